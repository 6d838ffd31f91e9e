"""Readable views of SUIT envelopes: CBOR diagnostic notation and a JSON summary.

For humans only; nothing here verifies anything. Byte strings that hold
well-formed CBOR are shown as ``<< ... >>`` (as the SUIT draft prints them).
"""

from __future__ import annotations

import json
from typing import Any

from trustedge import _cbor
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.predict import BootMeasurement
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.codec import Command, Digest, Manifest

__all__ = ["diagnostic", "summary"]

_NESTED = _cbor.DecodeLimits(max_size=1 << 20, max_depth=16, max_items=100_000)


def diagnostic(item: Any, indent: int = 0) -> str:
    """CBOR diagnostic notation of a decoded item, unwrapping embedded CBOR."""
    pad = "    " * (indent + 1)
    end = "    " * indent
    if isinstance(item, bytes):
        if len(item) > 1 and indent < 24:  # bounded: bstr-in-bstr nesting is unlimited
            try:
                inner = _cbor.decode(item, limits=_NESTED)
            except MalformedInputError:
                inner = None
            if isinstance(inner, (list, dict, _cbor.CBORTag)):
                return "<< " + diagnostic(inner, indent) + " >>"
        return f"h'{item.hex()}'"
    if isinstance(item, str):
        return json.dumps(item)
    if isinstance(item, _cbor.CBORTag):
        return f"{item.tag}(" + diagnostic(item.value, indent) + ")"
    if isinstance(item, list):
        if not item:
            return "[]"
        return "[\n" + ",\n".join(pad + diagnostic(v, indent + 1) for v in item) + "\n" + end + "]"
    if isinstance(item, dict):
        if not item:
            return "{}"
        rows = [
            pad + diagnostic(k, indent + 1) + ": " + diagnostic(v, indent + 1)
            for k, v in item.items()
        ]
        return "{\n" + ",\n".join(rows) + "\n" + end + "}"
    if item is None:
        return "null"
    if item is True or item is False:
        return "true" if item else "false"
    return str(item)


def _command(cmd: Command) -> Any:
    if cmd.id == n.DIR_OVERRIDE_PARAMETERS:
        return {
            cmd.name: {
                n.PARAMETER_NAMES[k]: (
                    v.to_json()
                    if isinstance(v, BootMeasurement)
                    else v.value.hex()
                    if isinstance(v, Digest)
                    else v.hex()
                    if isinstance(v, bytes)
                    else v
                )
                for k, v in cmd.arg.items()
            }
        }
    if cmd.id == n.DIR_TRY_EACH:
        return {cmd.name: [[_command(c) for c in branch] for branch in cmd.arg]}
    return {cmd.name: list(cmd.arg) if isinstance(cmd.arg, tuple) else cmd.arg}


def summary(manifest: Manifest) -> dict[str, Any]:
    """A JSON-able description of a decoded manifest."""
    return {
        "manifest-version": manifest.version,
        "manifest-sequence-number": manifest.sequence_number,
        "components": [[p.hex() for p in c] for c in manifest.components],
        "shared-sequence": [_command(c) for c in manifest.shared_sequence],
        "sequences": {
            n.SEQUENCE_NAMES[k]: [_command(c) for c in v] for k, v in manifest.sequences.items()
        },
        "severed": {
            n.SEQUENCE_NAMES.get(k, "text"): d.value.hex() for k, d in manifest.severed.items()
        },
        "reference-uri": manifest.reference_uri,
        "text-present": manifest.text is not None,
    }
