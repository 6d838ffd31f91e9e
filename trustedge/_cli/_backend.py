"""The one TPM option set of the command line (``--software DIR`` / ``--tcti TCTI``) and the
backend it opens.

Kept apart from :mod:`trustedge._cli.attestation` so that commands which only *may* use a TPM
(``envelope seal --tpm``, ``release`` and ``agent`` options) do not import the attestation
stack to build their parser: the backend modules load only when a TPM is opened.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

from trustedge._cli._common import CommandError
from trustedge.errors import BackendUnavailableError

if TYPE_CHECKING:
    from trustedge.hazmat.tpmbackend import TPMBackend

__all__ = ["add_backend_options", "open_backend"]


def add_backend_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The one TPM option set of every command: ``--software DIR`` (``--software-tpm DIR`` is
    the same option) or ``--tcti TCTI``; :func:`open_backend` opens what was chosen."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--software", "--software-tpm", dest="software", metavar="DIR",
        help="software TPM state directory",
    )  # fmt: skip
    group.add_argument("--tcti", metavar="TCTI", help="TCTI of a real TPM or swtpm")


def open_backend(args: argparse.Namespace) -> TPMBackend:
    """The backend named by ``--software DIR`` or ``--tcti TCTI`` (:func:`add_backend_options`);
    a usage error when neither was given."""
    if not getattr(args, "software", None) and not getattr(args, "tcti", None):
        raise CommandError("this needs a TPM: --tcti TCTI or --software DIR")
    if getattr(args, "software", None):
        from trustedge.attestation.backends.software import SoftwareTPM

        return SoftwareTPM(Path(args.software))
    # libtss2 prints WARNING/ERROR lines on stderr even for handled failures;
    # the CLI reports errors itself (a caller's own TSS2_LOG setting wins).
    os.environ.setdefault("TSS2_LOG", "all+none")
    try:
        module = importlib.import_module("trustedge.attestation.backends.tpm2")
        backend_cls = module.Tpm2Backend
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            f"the TPM backend (tpm2-pytss) is not available: {exc}"
        ) from exc
    return cast("TPMBackend", backend_cls(args.tcti))
