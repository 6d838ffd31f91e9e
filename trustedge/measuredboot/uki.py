"""Unified kernel images (UKI): the PCR11 value systemd-stub produces.

systemd-stub measures the UKI's own PE sections into PCR11 before it uses
them (UAPI.5 "Unified Kernel Image", systemd ``TPM2_PCR_MEASUREMENTS.md``):
for every UKI-defined section present, in the *canonical* section order (not
the order in the file), two ``EV_IPL`` records -- the digest of the section
name in ASCII **with** its trailing NUL, then the digest of the section's
loaded contents (``VirtualSize`` bytes). ``.pcrsig`` is never measured (it
holds signatures over the result). Userspace then extends the boot-phase
words (``enter-initrd``, ``leave-initrd``, ...) into the same PCR.

Which sections a stub knows depends on its version: ``.uname`` and ``.sbat``
are measured from systemd 254, ``.ucode`` from 256. The stub's version is read
from its ``.sdmagic`` section (``#### LoaderInfo: systemd-stub 252 ####``) and
can be overridden. A UKI carrying a section this module does not know how a
stub treats (multi-profile ``.profile``, ``.dtbauto``, ``.hwids``, ``.efifw``)
is refused rather than predicted wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.measuredboot.authenticode import PEImage, parse_pe_image
from trustedge.measuredboot.events import BANK_SIZES, bank_hash

__all__ = [
    "BOOT_PHASES",
    "UKI_SECTION_ORDER",
    "UKISection",
    "extend_phases",
    "measured_sections",
    "stub_version",
    "uki_measurements",
    "uki_pcr11",
]

#: The canonical order in which systemd-stub measures sections (UAPI.5).
UKI_SECTION_ORDER: Final = (
    ".linux",
    ".osrel",
    ".cmdline",
    ".initrd",
    ".ucode",
    ".splash",
    ".dtb",
    ".uname",
    ".sbat",
    ".pcrsig",
    ".pcrpkey",
)
#: Boot phases systemd-pcrphase extends into PCR11, in order.
BOOT_PHASES: Final = ("enter-initrd", "leave-initrd", "sysinit", "ready", "shutdown", "final")

_SINCE: Final[dict[str, int]] = {".uname": 254, ".sbat": 254, ".ucode": 256}
_UNSUPPORTED: Final = frozenset({".profile", ".dtbauto", ".hwids", ".efifw"})
_LOADER_INFO: Final = re.compile(rb"#### LoaderInfo: systemd-stub (\d+)[^#]* ####")


@dataclass(frozen=True)
class UKISection:
    """One measured section: its name and the two digests the stub extends."""

    name: str
    name_digest: bytes
    data_digest: bytes


def stub_version(image: PEImage) -> int | None:
    """The systemd major version named in the image's ``.sdmagic`` section, if any."""
    sec = image.section(".sdmagic")
    if sec is None:
        return None
    match = _LOADER_INFO.search(sec.body(image))
    return int(match.group(1)) if match else None


def measured_sections(version: int) -> tuple[str, ...]:
    """The sections a systemd-stub of ``version`` measures, in measurement order."""
    return tuple(
        name for name in UKI_SECTION_ORDER if name != ".pcrsig" and version >= _SINCE.get(name, 0)
    )


def _image(uki: bytes | PEImage) -> PEImage:
    return uki if isinstance(uki, PEImage) else parse_pe_image(uki)


def uki_measurements(
    uki: bytes | PEImage, bank: str = "sha256", *, version: int | None = None
) -> tuple[UKISection, ...]:
    """The section measurements of a UKI, in the order the stub makes them.

    ``version`` overrides the stub version found in ``.sdmagic``; without
    either the newest known rules apply. Raises
    :class:`~trustedge.errors.MalformedInputError` for a malformed image or
    one without a ``.linux`` section, and
    :class:`~trustedge.errors.UnsupportedAlgorithmError` for sections whose
    treatment is not known here.
    """
    if bank not in BANK_SIZES:
        raise UnsupportedAlgorithmError(f"unknown hash bank {bank!r}")
    image = _image(uki)
    names = [s.name for s in image.sections]
    odd = sorted(_UNSUPPORTED.intersection(names))
    if odd:
        raise UnsupportedAlgorithmError(f"UKI sections {', '.join(odd)} are not supported")
    if ".linux" not in names:
        raise MalformedInputError("not a UKI: no .linux section")
    if version is None:
        version = stub_version(image) or 10_000
    out = []
    for name in measured_sections(version):
        sec = image.section(name)  # the stub uses the first section of a name
        if sec is None:
            continue
        out.append(
            UKISection(
                name=name,
                name_digest=bank_hash(bank, name.encode("ascii") + b"\x00"),
                data_digest=bank_hash(bank, sec.body(image)),
            )
        )
    return tuple(out)


def uki_pcr11(
    uki: bytes | PEImage,
    bank: str = "sha256",
    *,
    phases: Sequence[str] = (),
    version: int | None = None,
    start: bytes | None = None,
) -> bytes:
    """PCR11 after systemd-stub measured ``uki`` (from ``start``, default all-zero)
    and userspace extended ``phases`` (e.g. ``("enter-initrd",)``).

    Equals ``systemd-measure calculate --phase=<phases joined by ':'>`` on the
    UKI's component files.
    """
    value = start if start is not None else bytes(BANK_SIZES[bank])
    if len(value) != BANK_SIZES[bank]:
        raise ValueError(f"start value must be {BANK_SIZES[bank]} bytes")
    for sec in uki_measurements(uki, bank, version=version):
        value = bank_hash(bank, value + sec.name_digest)
        value = bank_hash(bank, value + sec.data_digest)
    return extend_phases(bank, value, phases)


def extend_phases(bank: str, value: bytes, phases: Sequence[str]) -> bytes:
    """``value`` (PCR11 in ``bank``) after systemd-pcrphase extended each of ``phases``
    (``H(phase)``, the phase string's UTF-8 bytes). MalformedInputError for a phase that is
    empty, longer than 64 characters, or not printable ASCII without spaces and ':' (the
    separator of ``systemd-measure --phase``)."""
    for phase in phases:
        if not 0 < len(phase) <= 64 or not all(33 <= ord(c) <= 126 and c != ":" for c in phase):
            raise MalformedInputError(f"not a boot phase string: {phase!r}")
        value = bank_hash(bank, value + bank_hash(bank, phase.encode("ascii")))
    return value
