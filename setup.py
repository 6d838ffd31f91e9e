"""Declares the optional C extension ``trustedge.hashing._speedups``.

Everything else lives in pyproject.toml. A failed compile is never silent: it
prints a banner and the package falls back to the pure-Python twin, unless
``TRUSTEDGE_REQUIRE_EXTENSION=1`` is set (CI sets it), which makes it fatal.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _required() -> bool:
    return os.environ.get("TRUSTEDGE_REQUIRE_EXTENSION", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing entirely
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        if _required():
            raise
        banner = "=" * 72
        text = (
            f"\n{banner}\nWARNING: trustedge.hashing._speedups could not be compiled:\n"
            f"  {exc}\nFalling back to the pure-Python twin (slower, same digests).\n"
            f"Set TRUSTEDGE_REQUIRE_EXTENSION=1 to make this an error.\n{banner}\n\n"
        )
        sys.stderr.write(text)
        # pip shows a build's output only with -v: tell the person at the terminal directly.
        try:
            with open("/dev/tty", "w") as tty:
                tty.write(text)
        except OSError:
            pass  # no terminal (CI, a pipe): the log above and the import-time note remain


extra_compile_args = ["-O3", "-std=c11", "-Wall", "-Wextra"]
if sys.platform != "win32":
    extra_compile_args.append("-pthread")

setup(
    ext_modules=[
        Extension(
            "trustedge.hashing._speedups",
            sources=[
                "trustedge/hashing/_speedups.c",
                "trustedge/hashing/sha256_kernels.c",
            ],
            depends=["trustedge/hashing/sha256_kernels.h"],
            extra_compile_args=extra_compile_args,
            extra_link_args=["-pthread"] if sys.platform != "win32" else [],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
