"""Fixtures for the OTA tests: signing keys, a release factory, a device, state."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.swtpm import Swtpm
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.backends.tpm2 import Tpm2Backend
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.ota import FileStateStore, FileSystemDevice, KeySet, Updater
from trustedge.ota.release import create_envelope, sign_envelope

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
NOW = 1_800_000_000


def ed_key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"k%d" % seed).digest())


@dataclass
class Releases:
    """Builds signed envelopes for one component ``[h'00']`` with a real payload."""

    keys: list[Any] = field(default_factory=lambda: [ed_key(i) for i in range(5)])

    def payload(self, seq: int) -> bytes:
        return b"firmware %d " % seq * 50

    def spec(self, seq: int, payload: bytes | None = None, **extra: Any) -> dict[str, Any]:
        data = self.payload(seq) if payload is None else payload
        comp = {
            "install-id": ["00"],
            "vendor-id": VENDOR,
            "class-id": CLASS,
            "install-digest": {
                "algorithm-id": "sha256",
                "digest-bytes": hashlib.sha256(data).hexdigest(),
            },
            "install-size": len(data),
            "uri": "#fw",
            "bootable": True,
        }
        comp.update(extra)
        return {"manifest-version": 1, "manifest-sequence-number": seq, "components": [comp]}

    def make(
        self,
        seq: int,
        *,
        signers: Sequence[Any] | None = None,
        payload: bytes | None = None,
        integrated: bytes | None = None,
        **extra: Any,
    ) -> bytes:
        data = self.payload(seq) if payload is None else payload
        env = create_envelope(
            self.spec(seq, data, **extra),
            payloads={"#fw": data if integrated is None else integrated},
        )
        return sign_envelope(env, list(signers if signers is not None else self.keys[:1]))


@pytest.fixture
def releases() -> Releases:
    return Releases()


@pytest.fixture
def device(tmp_path: Path) -> FileSystemDevice:
    import uuid

    return FileSystemDevice(
        tmp_path / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
    )


@pytest.fixture
def make_updater(
    tmp_path: Path, device: FileSystemDevice, releases: Releases
) -> Callable[..., Updater]:
    def make(trust: Any = None, **kwargs: Any) -> Updater:
        if trust is None:
            trust = KeySet.of([releases.keys[0].public_key()])
        return Updater(trust, FileStateStore(tmp_path / "state"), device, **kwargs)

    return make


@pytest.fixture(params=["software", "tpm2"])
def tpm_backend(
    request: pytest.FixtureRequest, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> Iterator[TPMBackend]:
    """A real TPM backend for the NV-counter rollback store: the software TPM, and
    Tpm2Backend on a fresh swtpm (so NV indices never collide between tests)."""
    if request.param == "software":
        yield SoftwareTPM(tmp_path / "software-tpm")
        return
    tpm = swtpm_factory().start()
    with Tpm2Backend(tpm.tcti) as backend:
        yield backend
