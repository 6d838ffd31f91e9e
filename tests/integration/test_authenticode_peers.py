"""Authenticode digests of real Debian EFI binaries equal pesign's and osslsigncode's.

Binaries: shim, MokManager, fallback (shim-signed, shim-helpers-amd64-signed),
GRUB (grub-efi-amd64-signed), systemd-boot and the systemd-stub (systemd-boot-efi)
and a Debian cloud kernel's vmlinuz (an EFI-stub PE image). See tests/debian_efi.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.debian_efi import debian_efi_binaries
from tests.requirements import unavailable
from trustedge._cli import main
from trustedge.measuredboot.authenticode import authenticode_digest, parse_pe_image


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install {name})")
    return path


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    return debian_efi_binaries()


def _pesign(path: Path, digest: str) -> bytes:
    out = subprocess.run(
        [_tool("pesign"), "-h", "-d", digest, "-i", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.fullmatch(r"hash: ([0-9a-f]+)\s*", out)
    assert match, out
    return bytes.fromhex(match.group(1))


def test_corpus_has_every_kind_of_boot_binary(binaries: dict[str, Path]) -> None:
    names = set(binaries)
    assert {"shimx64.efi.signed", "grubx64.efi.signed", "systemd-bootx64.efi"} <= names
    assert any(n.startswith("vmlinuz-") for n in names)
    signed = [n for n, p in binaries.items() if parse_pe_image(p.read_bytes()).signed]
    assert len(signed) >= 4  # shim, mm, fb, grub and the kernel carry signatures


@pytest.mark.parametrize("bank", ["sha256", "sha1"])
def test_digest_equals_pesign(binaries: dict[str, Path], bank: str) -> None:
    for name, path in binaries.items():
        ours = authenticode_digest(path.read_bytes(), bank)
        assert ours == _pesign(path, bank), name


def test_sha384_and_sha256_equal_osslsigncode(binaries: dict[str, Path], tmp_path: Path) -> None:
    """osslsigncode prints the digest it computes when verifying; sign an unsigned
    image with a throwaway key in sha384 and sha256 and compare."""
    tool = _tool("osslsigncode")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test",
            "-days", "1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    for name in ("systemd-bootx64.efi", "linuxx64.efi.stub"):
        for bank in ("sha384", "sha256"):
            out_file = tmp_path / f"{name}.{bank}"
            subprocess.run(
                [
                    tool, "sign", "-h", bank, "-certs", str(cert), "-key", str(key),
                    "-in", str(binaries[name]), "-out", str(out_file),
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            verify = subprocess.run(
                [tool, "verify", "-in", str(out_file)], capture_output=True, text=True
            )
            match = re.search(r"Calculated message digest\s*:\s*([0-9A-F]+)", verify.stdout)
            assert match, verify.stdout + verify.stderr
            signed = out_file.read_bytes()
            assert parse_pe_image(signed).signed
            assert authenticode_digest(signed, bank) == bytes.fromhex(match.group(1)), name


def test_cli_prints_the_pesign_digest_for_every_file(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in binaries.values()]
    assert main(["eventlog", "authenticode", *paths, "--bank", "sha1", "--json"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    assert [i["file"] for i in images] == paths
    for item, path in zip(images, binaries.values(), strict=True):
        assert bytes.fromhex(item["digest"]) == _pesign(path, "sha1")
    assert main(["eventlog", "authenticode", paths[0]]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{_pesign(binaries[Path(paths[0]).name], 'sha256').hex()}  {paths[0]}"


def test_truncated_real_binaries_are_rejected_cleanly(
    binaries: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = binaries["shimx64.efi.signed"].read_bytes()
    for cut in (64, 300, 1024, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.efi"
        bad.write_bytes(data[:cut])
        assert main(["eventlog", "authenticode", str(bad), "--json"]) == 3
        err = capsys.readouterr()
        assert "Traceback" not in err.err
