"""atheris entry point: reference-value documents from outside (``trustedge.attestation.corim``,
``trustedge.attestation.keylime``, ``trustedge.attestation.signedpolicy``, ``.deb`` archives).

Every input is offered as a CoRIM (decoded, imported leniently, verified as signed), as a
Keylime refstate / runtime policy / allowlist / DSSE envelope, as a signed trustedge policy
and as a Debian package. Seeds are CoRIMs and signed policies made by the harness's key and
the Keylime corpus' runtime policy.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.fuzz._harness import files
from trustedge.attestation import corim, keylime, signedpolicy
from trustedge.errors import TrustedgeError
from trustedge.measuredboot.runtime_reference import runtime_policy_from_debs

MAX_LEN = 16384
_KEY = ec.derive_private_key(0xF022, ec.SECP256R1())
_POLICY = {"version": 1, "rules": [
    {"rule": "secure_boot"},
    {"rule": "pcr_values", "pcr": 4, "bank": "sha256", "values": ["ab" * 32]},
    {"rule": "kernel_cmdline", "required": ["^ro$"]},
    {"rule": "db", "allowed": ["cd" * 32]},
]}  # fmt: skip
_DEB = Path(tempfile.mkdtemp(prefix="fuzz-deb-")) / "input.deb"


def seeds() -> list[bytes]:
    """Signed and unsigned CoRIMs, a signed policy, Keylime runtime policies, an ar archive."""
    out = [
        corim.export_corim(_POLICY, corim_id="s", vendor="v", model="m"),
        corim.export_corim(_POLICY, corim_id="s", vendor="v", model="m", signer=_KEY, not_after=9),
        signedpolicy.sign_policy(b'{"rules": []}', _KEY, kind="boot", version=1, expires=9),
        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n",
        b"ab" * 32 + b"  /usr/bin/x\n",
    ]
    out += list(files("tests/data/third_party/eventlog/keylime/ima/test_ima_verification/*.json"))
    return out


def TestOneInput(data: bytes) -> None:
    pub = [_KEY.public_key()]
    checks = (
        lambda: corim.import_corim(corim.decode_corim(data), any_profile=True),
        lambda: corim.verify_signed_corim(data, pub, now=0),
        lambda: keylime.boot_policy_from_refstate(data),
        lambda: keylime.runtime_policy_from_keylime(data),
        lambda: keylime.runtime_policy_from_allowlist(data, data),
        lambda: keylime.verify_keylime_dsse(data, pub),
        lambda: signedpolicy.verify_signed_policy(data, pub, now=0),
    )
    for check in checks:
        try:
            check()
        except TrustedgeError:
            continue
    _DEB.write_bytes(data)
    try:
        runtime_policy_from_debs([_DEB])
    except TrustedgeError:
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
