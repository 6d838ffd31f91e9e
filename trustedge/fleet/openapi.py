"""The service's OpenAPI 3.1 document (``trustedge/fleet/openapi.json``, also served at
``GET /openapi.json``). A test checks it against :data:`trustedge.fleet.service.ROUTES` and
validates real responses against its schemas."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["openapi_document"]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The parsed OpenAPI document (cached; do not mutate)."""
    text = resources.files("trustedge.fleet").joinpath("openapi.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc
