"""atheris entry point: model-load logs and model packs (``attestation.modellog``, ``ota.model``).

The input is offered as a model-load log (parsed, replayed, checked against a
fixed certified value and appraised against a fixed policy: every event's
signature goes through the OMS bundle parser) and as a model pack stream
(``PackWriter`` unpacks it into a temporary directory, in pieces, then commits
or discards) and as an envelope prefix (``envelope_binding``). Seeds: a log of two
signed loads, packs of a small model and an envelope prefix.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from trustedge.attestation.modellog import (
    SIGNATURE_FORMAT,
    ModelLoadEvent,
    ModelPolicy,
    _allowed,
    encode_events,
    parse_model_log,
    replay,
    verify_model_log,
)
from trustedge.errors import TrustedgeError
from trustedge.ota.model import PackWriter, envelope_binding, iter_pack, pack_header

MAX_LEN = 65536
#: Fewer mutations than the default: every input also unpacks into a directory (fsync).
MUTATIONS = 600
_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
_POLICY = ModelPolicy(allowed_signers=(_KEY.public_key(),))
_WORK = Path(tempfile.mkdtemp(prefix="fuzz-model-delivery-"))
atexit.register(shutil.rmtree, _WORK, True)


def _model(root: Path) -> Path:
    (root / "tok").mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (root / "tok" / "vocab.json").write_text('{"a": 1}')
    return root


def seeds() -> list[bytes]:
    from trustedge.models import sign_model

    model = _model(_WORK / "seed-model")
    bundle = sign_model(model, _KEY)
    digest = hashlib.sha256(b"model").digest()
    events = [
        ModelLoadEvent(0, 0x013E0D01, digest, "seed-model", bundle, SIGNATURE_FORMAT),
        ModelLoadEvent(1, 0x013E0D01, bytes(32), "unsigned"),
    ]  # fmt: skip
    packs = [b"".join(iter_pack(model, pack_header(model, sig))) for sig in (None, b"sig")]
    import io

    from trustedge.envelope import HPKEIdentity, Writer

    out = io.BytesIO()
    with Writer(out, [HPKEIdentity.generate().recipient], size=0):
        pass
    prefix = out.getvalue()[:-16]  # the empty final chunk's tag
    return [encode_events(events), encode_events(events[1:]), *packs, prefix]


def TestOneInput(data: bytes) -> None:
    try:
        log = parse_model_log(data)
    except TrustedgeError:
        pass
    else:
        events = log.unverified_events
        value = replay(events)
        if value is not None:
            try:
                verified = verify_model_log(log, value, nv_index=events[0].nv_index)
            except TrustedgeError:  # events naming different indexes
                assert len({e.nv_index for e in events}) > 1
            else:
                assert verified.events == events
        for event in events[:8]:
            _allowed(event, _POLICY, 1_800_000_000)
    try:
        envelope_binding(data)
    except TrustedgeError:
        pass
    writer = PackWriter(_WORK / "slot")
    try:
        for start in range(0, len(data), 1000):
            writer.write(data[start : start + 1000])
        writer.commit()
    except TrustedgeError:
        writer.discard()
    finally:
        shutil.rmtree(_WORK / "slot", ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
