"""Real EFI binaries from Debian packages, for the Authenticode and UKI interop tests.

Two kinds of source, chosen per package:

* installed system packages (``tools/test`` installs them): ``systemd-boot-efi``
  (systemd-boot and the systemd-stub UKI stub), ``pesign``, ``osslsigncode``;
* packages that must not be *installed* on a build machine -- ``shim-signed``
  and ``grub-efi-amd64-signed`` run boot-loader installation hooks, and a
  ``linux-image`` package builds an initramfs -- are fetched with
  ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache directory
  (``$TRUSTEDGE_DEBIAN_EFI_CACHE``, default ``~/.cache/trustedge/debian-efi``).
  The download happens once per machine (about 28 MB, mostly the kernel).

A missing tool or a failed download is :func:`tests.requirements.unavailable`:
a failure under ``tools/test`` and in CI, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.requirements import unavailable

__all__ = ["DOWNLOADED_PACKAGES", "SYSTEMD_EFI_DIR", "debian_efi_binaries"]

SYSTEMD_EFI_DIR = Path("/usr/lib/systemd/boot/efi")

#: package (apt name) -> globs of the EFI images wanted from it.
DOWNLOADED_PACKAGES: dict[str, tuple[str, ...]] = {
    "shim-signed": ("usr/lib/shim/shimx64.efi.signed",),
    "shim-helpers-amd64-signed": ("usr/lib/shim/mmx64.efi.signed", "usr/lib/shim/fbx64.efi.signed"),
    "grub-efi-amd64-signed": ("usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",),
    "linux-image-cloud-amd64": (),  # a metapackage: its dependency carries the kernel
}


def _cache_dir() -> Path:
    env = os.environ.get("TRUSTEDGE_DEBIAN_EFI_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "trustedge" / "debian-efi"


def _kernel_package() -> str:
    out = subprocess.run(
        ["apt-cache", "depends", "--no-recommends", "linux-image-cloud-amd64"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if name.startswith("linux-image-") and name != "linux-image-cloud-amd64":
            return name
    unavailable("apt-cache knows no linux-image-cloud-amd64 kernel (run apt-get update)")


def _download(cache: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        unavailable("apt-get and dpkg-deb are needed to fetch Debian's EFI binaries")
    packages = [p for p in DOWNLOADED_PACKAGES if p != "linux-image-cloud-amd64"]
    packages.append(_kernel_package())
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", *packages], cwd=tmp, capture_output=True, text=True
        )
        if got.returncode != 0:
            unavailable(f"apt-get download {' '.join(packages)} failed: {got.stderr[-400:]}")
        staging = Path(tmp) / "root"
        for deb in sorted(Path(tmp).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
        cache.mkdir(parents=True, exist_ok=True)
        wanted = [g for globs in DOWNLOADED_PACKAGES.values() for g in globs] + ["boot/vmlinuz-*"]
        for pattern in wanted:
            for path in staging.glob(pattern):
                shutil.copyfile(path, cache / (path.name + ".part"))
                os.replace(cache / (path.name + ".part"), cache / path.name)
        (cache / "COMPLETE").write_text("\n".join(sorted(packages)) + "\n")


def debian_efi_binaries() -> dict[str, Path]:
    """name -> path of every real EFI image the interop tests use (at least six)."""
    cache = _cache_dir()
    if not (cache / "COMPLETE").exists():
        _download(cache)
    found = {p.name: p for p in sorted(cache.iterdir()) if p.name.endswith((".signed",))}
    found.update({p.name: p for p in cache.glob("vmlinuz-*")})
    for name in ("systemd-bootx64.efi", "linuxx64.efi.stub"):
        path = SYSTEMD_EFI_DIR / name
        if not path.exists():
            unavailable(f"{path} is missing (apt-get install systemd-boot-efi)")
        found[name] = path
    if not any(n.startswith("vmlinuz-") for n in found) or len(found) < 6:
        unavailable(f"incomplete Debian EFI cache in {cache}: {sorted(found)}")
    return found
