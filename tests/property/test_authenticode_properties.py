"""Authenticode hashing: generated images agree with pesign, mutated ones fail cleanly."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pe import build_pe
from tests.requirements import unavailable
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.authenticode import authenticode_digest, parse_pe_image

_names = st.sampled_from([".text", ".data", ".reloc", ".sbat", ".linux", ".cmdline", "mods"])
_sections = st.lists(st.tuples(_names, st.binary(max_size=1500)), min_size=1, max_size=6)


def _pesign() -> str:
    path = shutil.which("pesign")
    if path is None:
        unavailable("pesign is not installed (apt-get install pesign)")
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sections=_sections,
    trailing=st.binary(max_size=40),
    cert=st.none() | st.binary(min_size=1, max_size=64),
    checksum=st.integers(0, 2**32 - 1),
)
def test_generated_images_match_pesign(
    sections: list[tuple[str, bytes]], trailing: bytes, cert: bytes | None, checksum: int
) -> None:
    image = build_pe(sections, trailing=trailing, certificate=cert, checksum=checksum)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "img.efi"
        path.write_bytes(image)
        out = subprocess.run(
            [_pesign(), "-h", "-i", str(path)], capture_output=True, text=True, check=True
        ).stdout
    assert authenticode_digest(image) == bytes.fromhex(out.split()[1])
    # Signing (adding a certificate) and the CheckSum never change the digest.
    unsigned = build_pe(sections, trailing=trailing)
    assert authenticode_digest(unsigned) == authenticode_digest(image)


_BASE = build_pe([(".text", b"\x90" * 700), (".data", b"d" * 300)], certificate=b"sig" * 5)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(_BASE)),
)
def test_mutated_images_parse_or_raise_malformed(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_BASE)
    for offset, value in edits:
        data[offset] = value
    try:
        image = parse_pe_image(bytes(data[:cut]))
    except MalformedInputError:
        return
    end = 0
    for offset, length in image.hashed_ranges():
        assert offset >= end and offset + length <= cut
        end = offset + length
    image.authenticode("sha384")
