"""``trustedge envelope`` with TPM-sealed KEKs: the software TPM and swtpm."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge._cli import main


def _backend_args(kind: str, tmp_path: Path, swtpm_factory: type[Swtpm]) -> list[str]:
    if kind == "software":
        return ["--software-tpm", str(tmp_path / "tpm")]
    return ["--tcti", swtpm_factory().start().tcti]


@pytest.mark.parametrize("kind", ["software", "tpm2"])
def test_tpm_kek_seal_open_and_pcr_policy(
    kind: str, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> None:
    backend = _backend_args(kind, tmp_path, swtpm_factory)
    kek, plain, sealed, out = (tmp_path / n for n in ("k.tpm", "p", "p.tenv", "out"))
    plain.write_bytes(b"sensor buffer " * 1000)
    assert (
        main(
            ["tpm", "extend", *_tpm_cli(backend), "--pcr", "16", "--digest", "sha256=" + "00" * 32]
        )
        == 0
    )
    assert (
        main(
            [
                "envelope",
                "keygen",
                "--type",
                "tpm-kek",
                "--pcr",
                "sha256:16",
                "-o",
                str(kek),
                *backend,
            ]
        )
        == 0
    )
    assert (
        main(["envelope", "seal", "--tpm", str(kek), *backend, "-i", str(plain), "-o", str(sealed)])
        == 0
    )
    assert (
        main(["envelope", "open", "--tpm", str(kek), *backend, "-i", str(sealed), "-o", str(out)])
        == 0
    )
    assert out.read_bytes() == plain.read_bytes()
    # Booting something else (PCR 16 moves) locks the data away: exit 1, no output.
    assert (
        main(
            ["tpm", "extend", *_tpm_cli(backend), "--pcr", "16", "--digest", "sha256=" + "11" * 32]
        )
        == 0
    )
    out.unlink()
    assert (
        main(["envelope", "open", "--tpm", str(kek), *backend, "-i", str(sealed), "-o", str(out)])
        == 1
    )
    assert not out.exists()


def _tpm_cli(backend: list[str]) -> list[str]:
    """The same backend in ``trustedge tpm`` syntax."""
    return ["--software", backend[1]] if backend[0] == "--software-tpm" else backend
