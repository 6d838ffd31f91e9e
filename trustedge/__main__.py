"""``python -m trustedge`` -- same as the ``trustedge`` command."""

import sys

from trustedge._cli import main

if __name__ == "__main__":
    sys.exit(main())
