"""atheris entry point: the sealed-update documents (issue 17).

The first byte picks the parser, the rest is its input:

* 0 -- a signed PCR policy (``hazmat.tpm2.policy.SignedPolicy.decode``), then
  what the software TPM checks first: the signature against a fixed authority;
* 1 -- the trustedge-boot-measurement SUIT parameter (``ota.suit.codec``);
* 2 -- a stored next-boot reference (``measuredboot.predict.BootReference``),
  then checked against a fixed verified log.

Seeds are valid documents of each kind.
"""

from __future__ import annotations

import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import _cbor
from trustedge.errors import TrustedgeError
from trustedge.hazmat.tpm2.policy import (
    PCRPolicy,
    SignedPolicy,
    authority_public,
    sign_policy,
    verify_policy_signature,
)
from trustedge.measuredboot import EventType, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.predict import (
    BootMeasurement,
    BootReference,
    UKISectionDigests,
    predict_next_boot,
)
from trustedge.ota.suit.codec import decode_boot_measurement, encode_boot_measurement

MAX_LEN = 8192
_KEY = ec.derive_private_key(0xF022, ec.SECP256R1())
_AUTHORITY = authority_public(_KEY.public_key())
_LIMITS = _cbor.DecodeLimits(max_size=MAX_LEN, max_depth=16, max_items=10_000)
_LOG = parse_event_log(
    build_event_log(
        [
            LogEvent(4, EventType.EV_SEPARATOR, bytes(4)),
            LogEvent(4, EventType.EV_EFI_BOOT_SERVICES_APPLICATION, b"", {"sha256": bytes(32)}),
            LogEvent(7, EventType.EV_SEPARATOR, bytes(4)),
        ]
    )
)
_VERIFIED = _LOG.verify(_LOG.replay())


def seeds() -> list[bytes]:
    values = {"sha256": {4: bytes(32), 7: hashlib.sha256(b"7").digest()}}
    policy = PCRPolicy.from_values(values, {"sha256": [4, 7]}, nv_index=0x01500001,
                                   nv_name=b"\x00\x0b" + bytes(32), version=3)  # fmt: skip
    signed = sign_policy(policy, _KEY, policy_ref=b"boot").encode()
    bm = BootMeasurement("loader", {"sha256": bytes(32), "sha1": bytes(20)}, path="/EFI/x.efi")
    uki = BootMeasurement(
        "uki", {"sha256": bytes(32)}, file_digests={"sha256": bytes(32)},
        uki_sections=(UKISectionDigests(".linux", {"sha256": bytes(32)}),),
    )  # fmt: skip
    prediction = predict_next_boot(_VERIFIED, [BootMeasurement("kernel", {"sha256": b"\1" * 32})])
    reference = BootReference.from_prediction(prediction).encode()
    return [
        b"\0" + signed,
        b"\1" + encode_boot_measurement(bm),
        b"\1" + encode_boot_measurement(uki),
        b"\2" + reference,
    ]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    kind, body = data[0] % 3, data[1:]
    try:
        if kind == 0:
            signed = SignedPolicy.decode(body)
            assert SignedPolicy.decode(signed.encode()) == signed
            signed.policy.digest()
            verify_policy_signature(signed, _AUTHORITY)
        elif kind == 1:
            bm = decode_boot_measurement(body, _LIMITS)
            assert decode_boot_measurement(encode_boot_measurement(bm), _LIMITS) == bm
        else:
            ref = BootReference.decode(body)
            assert BootReference.decode(ref.encode()) == ref
            ref.violations(_VERIFIED)
    except TrustedgeError:
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
