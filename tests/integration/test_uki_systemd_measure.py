"""PCR11 of a UKI built here (objcopy + Debian's systemd-stub + a Debian kernel)
equals ``systemd-measure calculate`` on the same component files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.debian_efi import SYSTEMD_EFI_DIR, debian_efi_binaries
from tests.pe import build_pe
from tests.requirements import unavailable
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.measuredboot.authenticode import authenticode_digest, parse_pe_image
from trustedge.measuredboot.uki import measured_sections, stub_version, uki_measurements, uki_pcr11

SYSTEMD_MEASURE = Path("/usr/lib/systemd/systemd-measure")


def _components(tmp: Path, kernel: Path, *, cmdline: str) -> dict[str, Path]:
    files = {
        ".linux": kernel,
        ".osrel": tmp / "os-release",
        ".cmdline": tmp / "cmdline",
        ".initrd": tmp / "initrd",
        ".uname": tmp / "uname",
        ".splash": tmp / "splash.bmp",
    }
    files[".osrel"].write_text('ID=debian\nVERSION_ID="12"\n')
    files[".cmdline"].write_text(cmdline)
    files[".initrd"].write_bytes(bytes(range(256)) * 37 + b"tail")
    files[".uname"].write_text(kernel.name.removeprefix("vmlinuz-"))
    files[".splash"].write_bytes(b"BM" + bytes(60))
    return files


def _build_uki(stub: Path, files: dict[str, Path], out: Path) -> None:
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        unavailable("objcopy is not installed (apt-get install binutils)")
    vma = {".osrel": 0x20000, ".cmdline": 0x30000, ".uname": 0x40000, ".splash": 0x50000}
    vma |= {".linux": 0x2000000, ".initrd": 0x3000000}
    args = [objcopy]
    # Deliberately not in canonical order: the stub measures in its own order.
    for name in (".initrd", ".cmdline", ".splash", ".uname", ".osrel", ".linux"):
        args += [
            "--add-section",
            f"{name}={files[name]}",
            "--change-section-vma",
            f"{name}={vma[name]:#x}",
        ]
    subprocess.run([*args, str(stub), str(out)], check=True, capture_output=True)


def _systemd_measure(files: dict[str, Path], bank: str, phase: str) -> bytes:
    if not SYSTEMD_MEASURE.exists():
        unavailable(f"{SYSTEMD_MEASURE} is missing (apt-get install systemd)")
    flags = {".linux": "--linux", ".osrel": "--osrel", ".cmdline": "--cmdline"}
    flags |= {".initrd": "--initrd", ".splash": "--splash"}
    cmd = [str(SYSTEMD_MEASURE), "calculate", f"--bank={bank}", f"--phase={phase}", "--json=short"]
    cmd += [f"{flag}={files[name]}" for name, flag in flags.items()]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    (entry,) = out[bank]
    assert entry["pcr"] == 11
    return bytes.fromhex(entry["hash"])


@pytest.fixture(scope="module")
def kernel() -> Path:
    return next(p for n, p in debian_efi_binaries().items() if n.startswith("vmlinuz-"))


@pytest.mark.parametrize("bank", ["sha256", "sha1", "sha384"])
def test_pcr11_equals_systemd_measure(kernel: Path, tmp_path: Path, bank: str) -> None:
    stub = SYSTEMD_EFI_DIR / "linuxx64.efi.stub"
    files = _components(tmp_path, kernel, cmdline="console=ttyS0 root=/dev/vda2 quiet")
    uki = tmp_path / "uki.efi"
    _build_uki(stub, files, uki)
    data = uki.read_bytes()
    image = parse_pe_image(data)
    version = stub_version(image)
    assert version is not None and version >= 252
    measured = [s.name for s in uki_measurements(image, bank)]
    assert measured == [n for n in measured_sections(version) if n in files]
    for phase in ("", "enter-initrd", "enter-initrd:leave-initrd:sysinit:ready"):
        phases = [p for p in phase.split(":") if p]
        assert uki_pcr11(image, bank, phases=phases) == _systemd_measure(files, bank, phase)
    # The UKI as a whole is the PE image firmware measures into PCR4.
    pesign = subprocess.run(
        ["pesign", "-h", "-i", str(uki)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert authenticode_digest(data) == bytes.fromhex(pesign)


def test_predicted_pcr11_at_a_phase_equals_systemd_measure(kernel: Path, tmp_path: Path) -> None:
    """An update that replaces the kernel of a shim -> UKI chain by a UKI built here: the
    predicted PCR11 at each boot phase is what ``systemd-measure calculate --phase`` says."""
    from trustedge.measuredboot import EventType, parse_event_log
    from trustedge.measuredboot.build import LogEvent, build_event_log
    from trustedge.measuredboot.predict import BootMeasurement, predict_next_boot

    stub = SYSTEMD_EFI_DIR / "linuxx64.efi.stub"
    files = _components(tmp_path, kernel, cmdline="console=ttyS0 root=/dev/vda2 ro")
    uki = tmp_path / "uki.efi"
    _build_uki(stub, files, uki)
    app = EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    log = parse_event_log(
        build_event_log(
            [
                LogEvent(4, EventType.EV_SEPARATOR, bytes(4)),
                LogEvent(4, app, b"", {"sha256": bytes([1]) * 32}),  # shim
                LogEvent(4, app, b"", {"sha256": bytes([2]) * 32}),  # the old UKI
                LogEvent(11, EventType.EV_IPL, b".linux\0", {"sha256": bytes([3]) * 32}),
            ],
            banks=("sha256",),
        )
    )
    current = log.verify(log.replay())
    measurement = BootMeasurement.of_image(uki.read_bytes(), "uki")
    for phase in (
        "",
        "enter-initrd",
        "enter-initrd:leave-initrd",
        "enter-initrd:leave-initrd:sysinit:ready",
    ):
        phases = [p for p in phase.split(":") if p]
        prediction = predict_next_boot(current, [measurement], phases=phases)
        assert prediction.next["sha256"][11] == _systemd_measure(files, "sha256", phase), phase


def test_changing_the_cmdline_changes_pcr11(kernel: Path, tmp_path: Path) -> None:
    stub = SYSTEMD_EFI_DIR / "linuxx64.efi.stub"
    values = []
    for i, cmdline in enumerate(("quiet", "quiet init=/bin/sh")):
        d = tmp_path / str(i)
        d.mkdir()
        files = _components(d, kernel, cmdline=cmdline)
        _build_uki(stub, files, d / "uki.efi")
        values.append(uki_pcr11((d / "uki.efi").read_bytes()))
        assert values[-1] == _systemd_measure(files, "sha256", "")
    assert values[0] != values[1]


def test_version_rules_and_refusals() -> None:
    assert ".sbat" not in measured_sections(252) and ".sbat" in measured_sections(254)
    assert ".ucode" not in measured_sections(255) and ".ucode" in measured_sections(256)
    assert ".pcrsig" not in measured_sections(999)
    uki = build_pe([(".linux", b"kernel"), (".sbat", b"sbat,1\n"), (".pcrsig", b"{}")])
    assert [s.name for s in uki_measurements(uki, version=252)] == [".linux"]
    assert [s.name for s in uki_measurements(uki, version=254)] == [".linux", ".sbat"]
    with pytest.raises(MalformedInputError):
        uki_pcr11(build_pe([(".text", b"not a uki")]))
    with pytest.raises(UnsupportedAlgorithmError):
        uki_pcr11(build_pe([(".linux", b"k"), (".profile", b"ID=x")]))
