"""The single source of trustedge's version number."""

__version__ = "0.1.0"
