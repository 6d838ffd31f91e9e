"""Backends that produce quotes behind :class:`~trustedge.hazmat.tpmbackend.TPMBackend`:
``software.SoftwareTPM`` (pure Python) and ``tpm2.Tpm2Backend`` (tpm2-pytss)."""

from __future__ import annotations

__all__: list[str] = []
