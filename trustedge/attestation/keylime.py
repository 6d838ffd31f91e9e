"""Migration from Keylime: its policies converted to trustedge's, with what has no equivalent.

- :func:`boot_policy_from_refstate` — Keylime's measured-boot reference state
  (``mb_refstate`` JSON, what ``keylime-policy create measured-boot`` writes and its
  ``example`` policy reads) to a trustedge event-log policy document;
- :func:`runtime_policy_from_allowlist` — Keylime's legacy allowlist (flat
  ``digest path`` lines, or JSON with ``hashes``) plus its excludelist (one regex a
  line) to a runtime policy;
- :func:`runtime_policy_from_keylime` — a Keylime runtime policy (JSON) checked and
  normalised, with an excludelist merged in;
- :func:`verify_keylime_dsse` — a DSSE-signed Keylime policy (``keylime-policy
  sign``: ECDSA P-256 over the DSSE PAE) verified with the caller's keys before
  anything in it is read.

Every converter is pure (bytes or parsed JSON in, :class:`Conversion` out) and
reports each Keylime field it could not express instead of dropping it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge.errors import MalformedInputError, SignatureError
from trustedge.models import dsse_pae

__all__ = [
    "Conversion",
    "boot_policy_from_refstate",
    "runtime_policy_from_allowlist",
    "runtime_policy_from_keylime",
    "verify_keylime_dsse",
]

_MAX_DOC: Final = 256 << 20


@dataclass(frozen=True)
class Conversion:
    """A converted policy document and the Keylime parts that have no equivalent."""

    document: dict[str, Any]
    kind: str  # "boot" or "runtime"
    unconverted: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "unconverted": list(self.unconverted)}


def _json(data: bytes | str, what: str) -> Any:
    if len(data) > _MAX_DOC:
        raise MalformedInputError(f"{what} larger than {_MAX_DOC} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"{what} is not JSON: {exc}") from None


def _hex(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedInputError(f"{what} must be a hex string")
    text = value[2:] if value.startswith("0x") else value
    try:
        bytes.fromhex(text)
    except ValueError:
        raise MalformedInputError(f"{what} is not hex: {value[:40]!r}") from None
    return text.lower()


def _sha256_of(digests: Any, what: str) -> str | None:
    """The sha256 value of a Keylime ``{alg: 0xhex}`` digest map (None when absent)."""
    if not isinstance(digests, dict):
        raise MalformedInputError(f"{what} must be an object of algorithm -> digest")
    value = digests.get("sha256")
    return None if value is None else _hex(value, what)


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise MalformedInputError(f"refstate {key!r} must be a list")
    return value


def _signature_ids(doc: Mapping[str, Any], key: str) -> list[str]:
    """SHA-256 identifiers (trustedge's entry ids) of refstate signature entries."""
    out = []
    for i, entry in enumerate(_list(doc, key)):
        if not isinstance(entry, dict):
            raise MalformedInputError(f"refstate {key}[{i}] must be an object")
        data = bytes.fromhex(_hex(entry.get("SignatureData"), f"{key}[{i}].SignatureData"))
        out.append(data.hex() if len(data) == 32 else hashlib.sha256(data).hexdigest())
    return sorted(set(out))


def boot_policy_from_refstate(refstate: bytes | str | Mapping[str, Any]) -> Conversion:
    """Convert a Keylime ``mb_refstate`` into a trustedge event-log policy document.

    The mapping (Keylime's ``example`` policy semantics): ``has_secureboot`` ->
    ``secure_boot``; ``db`` -> a ``db`` rule allowing only its entries (Keylime's
    KeySubset) ; ``dbx`` -> a ``dbx`` rule requiring its entries (KeySuperset);
    ``scrtm_and_bios`` -> PCR0 measurements; ``kernels[*]`` shim/grub/kernel
    Authenticode digests -> ``boot_applications``, their initrd/vmlinuz digests ->
    PCR9 measurements, their command lines -> one ``kernel_cmdline`` pattern;
    ``mokdig``/``mokxdig`` -> PCR14 measurements. ``pk``, ``kek`` and ``vendor_db``
    have no rule of their own and are reported.
    """
    doc = refstate if isinstance(refstate, Mapping) else _json(refstate, "refstate")
    if not isinstance(doc, Mapping):
        raise MalformedInputError("a Keylime refstate is a JSON object")
    known = {"has_secureboot", "scrtm_and_bios", "pk", "kek", "db", "dbx", "mokdig",
             "mokxdig", "kernels", "vendor_db"}  # fmt: skip
    unconverted = [f"unknown refstate field {k!r}" for k in sorted(set(doc) - known)]
    # What Keylime's example policy requires of a refstate (it fails every appraisal
    # without them): refuse such a refstate rather than convert it into a weaker policy.
    missing = [k for k in ("kernels", "scrtm_and_bios", "pk", "kek", "db", "dbx", "mokdig",
                           "mokxdig") if k not in doc]  # fmt: skip
    if missing:
        raise MalformedInputError(
            f"refstate lacks {', '.join(missing)} (Keylime refuses every boot against it)"
        )
    if not isinstance(doc["kernels"], list):
        raise MalformedInputError("refstate kernels must be a list")
    required_kernel = (
        {"shim_authcode_sha256", "grub_authcode_sha256", "kernel_authcode_sha256",
         "initrd_plain_sha256", "kernel_cmdline"}
        if doc.get("has_secureboot", True)
        else {"shim_authcode_sha256", "grub_authcode_sha256", "vmlinuz_plain_sha256",
              "initrd_plain_sha256", "kernel_cmdline"}
    )  # fmt: skip
    for i, kernel in enumerate(doc["kernels"]):
        lacking = required_kernel - set(kernel) if isinstance(kernel, dict) else required_kernel
        if lacking:
            raise MalformedInputError(
                f"refstate kernels[{i}] lacks {', '.join(sorted(lacking))} "
                "(Keylime refuses every boot against it)"
            )
    rules: list[dict[str, Any]] = []
    secure_boot = doc.get("has_secureboot", True)
    if not isinstance(secure_boot, bool):
        raise MalformedInputError("refstate has_secureboot must be true or false")
    if not secure_boot:  # Keylime's example policy then requires SecureBoot "No"
        rules.append({"rule": "secure_boot", "enabled": False})
    if secure_boot:
        rules.append({"rule": "secure_boot"})
        db = _signature_ids(doc, "db")
        if db:
            rules.append({"rule": "db", "allowed": db})
        dbx = _signature_ids(doc, "dbx")
        if dbx:
            rules.append({"rule": "dbx", "required": dbx})
    for key in ("pk", "kek", "vendor_db"):
        if _list(doc, key):
            unconverted.append(
                f"{key}: {len(_list(doc, key))} entries not checked (no trustedge rule; "
                "PCR7 is covered by secure_boot and db/dbx)"
            )
    firmware: set[str] = set()
    alternatives = _list(doc, "scrtm_and_bios")
    for i, alt in enumerate(alternatives):
        if not isinstance(alt, dict):
            raise MalformedInputError(f"scrtm_and_bios[{i}] must be an object")
        scrtm = alt.get("scrtm")
        if scrtm is not None and (d := _sha256_of(scrtm, f"scrtm_and_bios[{i}].scrtm")):
            firmware.add(d)
        for j, blob in enumerate(alt.get("platform_firmware", [])):
            if d := _sha256_of(blob, f"scrtm_and_bios[{i}].platform_firmware[{j}]"):
                firmware.add(d)
    if len(alternatives) > 1:
        unconverted.append(
            "scrtm_and_bios: alternatives merged into one allowed set (Keylime pairs them)"
        )
    if firmware:
        rules.append({"rule": "measurements", "pcr": 0, "bank": "sha256",
                      "digests": sorted(firmware)})  # fmt: skip
    apps: set[str] = set()
    pcr9: set[str] = set()
    cmdlines: list[str] = []
    for i, kernel in enumerate(_list(doc, "kernels")):
        if not isinstance(kernel, dict):
            raise MalformedInputError(f"kernels[{i}] must be an object")
        for key in ("shim_authcode_sha256", "grub_authcode_sha256", "kernel_authcode_sha256"):
            if key in kernel:
                apps.add(_hex(kernel[key], f"kernels[{i}].{key}"))
        for key in ("initrd_plain_sha256", "vmlinuz_plain_sha256"):
            if key in kernel:
                pcr9.add(_hex(kernel[key], f"kernels[{i}].{key}"))
        line = kernel.get("kernel_cmdline")
        if line is not None:
            if not isinstance(line, str):
                raise MalformedInputError(f"kernels[{i}].kernel_cmdline must be text")
            cmdlines.append(line)
    if apps:
        rules.append({"rule": "boot_applications", "bank": "sha256", "digests": sorted(apps)})
    if pcr9:
        unconverted.append(
            f"kernels: {len(pcr9)} initrd/vmlinuz digests not checked (PCR9 also holds GRUB's "
            "other files; pin PCR9 with 'policy from-eventlog' instead)"
        )
    if cmdlines:
        # Keylime full-matches each (already escaped) pattern against the logged string.
        pattern = "^(?:" + "|".join(f"(?:{c})" for c in cmdlines) + ")$"
        rules.append({"rule": "kernel_cmdline", "required": [pattern]})
    mok: set[str] = set()
    for key in ("mokdig", "mokxdig"):
        for j, entry in enumerate(_list(doc, key)):
            if d := _sha256_of(entry, f"{key}[{j}]"):
                mok.add(d)
    if mok:
        # Keylime's example policy accepts shim's MokListTrusted event once by its logged
        # name, whatever its digest; a name is not bound by any digest, so trustedge allows
        # the value shim writes (one byte 0x01) instead.
        mok.add(hashlib.sha256(b"\x01").hexdigest())
        unconverted.append(
            "MokListTrusted: Keylime accepts it by its (unbound) event name; trustedge allows "
            "only the value 1 on PCR14"
        )
        rules.append({"rule": "measurements", "pcr": 14, "bank": "sha256", "digests": sorted(mok)})
    return Conversion({"version": 1, "rules": rules}, "boot", tuple(unconverted))


def _excludes(text: bytes | str | None) -> list[str]:
    if text is None:
        return []
    lines = text.decode("utf-8", "strict") if isinstance(text, bytes) else text
    return [ln.strip() for ln in lines.splitlines() if ln.strip() and not ln.startswith("#")]


def _runtime_document(
    digests: Mapping[str, list[str]], keyrings: Mapping[str, list[str]], excludes: list[str]
) -> dict[str, Any]:
    return {
        "meta": {"version": 1, "generator": "trustedge policy import-keylime"},
        "release": 0,
        "digests": {p: sorted(set(v)) for p, v in sorted(digests.items())},
        "excludes": excludes,
        "keyrings": {k: sorted(set(v)) for k, v in sorted(keyrings.items())},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
    }


def runtime_policy_from_allowlist(
    allowlist: bytes | str, excludelist: bytes | str | None = None
) -> Conversion:
    """Convert a Keylime legacy allowlist (flat ``digest  path`` lines, ``%keyring:`` names,
    or JSON with ``hashes``) and excludelist into a runtime policy document."""
    try:
        text = allowlist.decode("utf-8") if isinstance(allowlist, bytes) else allowlist
    except UnicodeDecodeError:
        raise MalformedInputError("allowlist is not UTF-8 text") from None
    unconverted: list[str] = []
    digests: dict[str, list[str]] = {}
    keyrings: dict[str, list[str]] = {}
    stripped = text.lstrip()
    if stripped.startswith("{"):
        doc = _json(text, "allowlist")
        hashes = doc.get("hashes") if isinstance(doc, dict) else None
        if not isinstance(hashes, dict):
            raise MalformedInputError("JSON allowlist has no 'hashes' object")
        for path, values in hashes.items():
            if not isinstance(values, list):
                raise MalformedInputError(f"allowlist hashes of {path!r} must be a list")
            digests[str(path)] = [_hex(v, f"digest of {path}") for v in values]
        unconverted += [
            f"allowlist field {k!r} ignored" for k in sorted(set(doc) - {"hashes", "meta"})
        ]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            pieces = line.split(None, 1)
            if len(pieces) != 2:
                unconverted.append(f"allowlist line {number}: not 'digest path' ({line[:60]!r})")
                continue
            digest, path = pieces
            value = _hex(digest, f"allowlist line {number}")
            if path.startswith("%keyring:"):
                keyrings.setdefault(path[len("%keyring:") :], []).append(value)
            else:
                digests.setdefault(path, []).append(value)
    if not digests and not keyrings:
        raise MalformedInputError("the allowlist has no digest entry")
    document = _runtime_document(digests, keyrings, _excludes(excludelist))
    return Conversion(document, "runtime", tuple(unconverted))


def runtime_policy_from_keylime(
    policy: bytes | str | Mapping[str, Any], excludelist: bytes | str | None = None
) -> Conversion:
    """Check and normalise a Keylime runtime policy; fields trustedge does not
    evaluate (``ima-buf``, ``ima.dm_policy``, ``verification-keys``) are reported."""
    doc = policy if isinstance(policy, Mapping) else _json(policy, "runtime policy")
    if not isinstance(doc, Mapping):
        raise MalformedInputError("a Keylime runtime policy is a JSON object")
    unconverted: list[str] = []
    raw = doc.get("digests", {})
    rings = doc.get("keyrings", {})
    if not isinstance(raw, dict) or not isinstance(rings, dict):
        raise MalformedInputError("runtime policy 'digests' and 'keyrings' must be objects")
    digests = {
        str(p): [_hex(v, f"digest of {p}") for v in (vals if isinstance(vals, list) else [None])]
        for p, vals in raw.items()
    }
    keyrings = {
        str(k): [_hex(v, f"keyring {k}") for v in (vals if isinstance(vals, list) else [None])]
        for k, vals in rings.items()
    }
    excludes = doc.get("excludes", [])
    if not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes):
        raise MalformedInputError("runtime policy 'excludes' must be a list of regexes")
    if doc.get("ima-buf"):
        unconverted.append("ima-buf: buffer measurements other than keyrings are not checked")
    raw_ima = doc.get("ima")
    ima: Mapping[str, Any] = raw_ima if isinstance(raw_ima, dict) else {}
    if ima.get("dm_policy"):
        unconverted.append("ima.dm_policy: device-mapper measurements are not checked")
    if ima.get("ignored_keyrings"):
        unconverted.append("ima.ignored_keyrings: not supported (those keyrings must be listed)")
    if doc.get("verification-keys"):
        unconverted.append(
            "verification-keys: pass the IMA keys as a trustedge keyring (--keyring) instead"
        )
    merged = list(excludes) + [e for e in _excludes(excludelist) if e not in excludes]
    return Conversion(_runtime_document(digests, keyrings, merged), "runtime", tuple(unconverted))


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedInputError(f"DSSE {what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.b64decode(value, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise MalformedInputError(f"DSSE {what} is not base64") from None


def verify_keylime_dsse(
    envelope: bytes | str, keys: Sequence[ec.EllipticCurvePublicKey]
) -> tuple[str, bytes]:
    """Verify a Keylime DSSE envelope with ECDSA ``keys`` and return (payloadType, payload).

    At least one signature must verify with one of ``keys`` (SHA-256, over the DSSE
    PAE); otherwise :class:`~trustedge.errors.SignatureError`. Nothing of the payload
    is read before that.
    """
    if not keys:
        raise SignatureError("no key to verify the DSSE policy with")
    doc = _json(envelope, "DSSE envelope")
    if not isinstance(doc, dict):
        raise MalformedInputError("a DSSE envelope is a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise MalformedInputError("DSSE envelope lacks payloadType")
    payload = _b64(doc.get("payload"), "payload")
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or not signatures or len(signatures) > 16:
        raise MalformedInputError("DSSE envelope needs 1-16 signatures")
    pae = dsse_pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            raise MalformedInputError("a DSSE signature is an object")
        sig = _b64(entry.get("sig"), "signature")
        for key in keys:
            try:
                key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return payload_type, payload
    raise SignatureError("no DSSE signature verifies with the given keys")
