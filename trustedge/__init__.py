"""trustedge: device security and attestation at the edge.

Recipes live in the subpackages (``trustedge.measuredboot``,
``trustedge.attestation``, ``trustedge.envelope``, ``trustedge.ota``,
``trustedge.hashing``); raw primitives in ``trustedge.hazmat``. Importing
``trustedge`` itself is cheap and has no side effects.
"""

from trustedge._version import __version__

__all__ = ["__version__"]
