"""Persistent state of the software TPM: one deterministic-CBOR file, written atomically."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from trustedge import _cbor
from trustedge.errors import MalformedInputError

__all__ = ["STATE_FILE", "load_state"]

STATE_FILE: Final = "softtpm.cbor"
_LIMITS: Final = _cbor.DecodeLimits(max_size=4 * 1024 * 1024, max_depth=8, max_items=100_000)


def load_state(path: Path) -> dict[str, Any] | None:
    """The decoded state map, or None when there is no state file yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    state = _cbor.decode(data, limits=_LIMITS, canonical=True)
    if not isinstance(state, dict) or state.get("v") != 1:
        raise MalformedInputError(f"{path}: not a software TPM state (version 1)")
    _validate(state, path)
    return state


_SCALARS: Final[dict[str, type | tuple[type, ...]]] = {
    "seed": bytes, "drbg": int, "primary": bytes, "clock": int, "clock_nv": int,
    "reset": int, "restart": int, "safe": bool, "nv_max": int,
    "pcrs": dict, "eks": dict, "aks": dict, "nv": dict,
}  # fmt: skip


def _entries(value: Any, key_type: type, fields: Mapping[str, tuple[type, ...]]) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, key_type)
        and isinstance(v, dict)
        and set(v) == set(fields)
        and all(isinstance(v[f], t) for f, t in fields.items())
        for k, v in value.items()
    )


def _is_extend(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("kind") == "extend"


def _validate(state: dict[str, Any], path: Path) -> None:
    """Reject a state whose fields do not have the expected types (a corrupt or
    foreign file must fail as malformed input, never as KeyError/TypeError)."""
    bad = [k for k, t in _SCALARS.items() if not isinstance(state.get(k), t)]
    pcrs = state.get("pcrs")
    sizes = {"sha1": 20, "sha256": 32, "sha384": 48}
    if not isinstance(pcrs, dict) or set(pcrs) != set(sizes) or not all(
        isinstance(v, list) and len(v) == 24
        and all(isinstance(d, bytes) and len(d) == sizes[b] for d in v)
        for b, v in pcrs.items()
    ):  # fmt: skip
        bad.append("pcrs")
    if isinstance(state.get("primary"), bytes) and len(state["primary"]) != 32:
        bad.append("primary")
    key_cert = {"key": (bytes,), "cert": (bytes,)}
    if not _entries(state.get("eks"), str, key_cert):
        bad.append("eks")
    if not _entries(state.get("aks"), str, {"alg": (str,), "ek": (str,), "key": (bytes,)}):
        bad.append("aks")
    nv = state.get("nv")
    counters = {k: v for k, v in nv.items() if not _is_extend(v)} if isinstance(nv, dict) else nv
    extends = {k: v for k, v in nv.items() if _is_extend(v)} if isinstance(nv, dict) else {}
    extend_fields = {"kind": (str,), "public": (bytes,), "value": (bytes, type(None))}
    if not _entries(counters, int, {"value": (int, type(None))}) or not _entries(
        extends, int, extend_fields
    ):
        bad.append("nv")
    if "ca" in state and not _entries({"ca": state["ca"]}, str, key_cert):
        bad.append("ca")
    if bad:
        raise MalformedInputError(
            f"{path}: corrupt software TPM state ({', '.join(sorted(set(bad)))})"
        )
