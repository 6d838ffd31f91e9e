"""CoRIM (draft-ietf-rats-corim-10) in and out: trustedge reference values as CoMID triples.

Export (:func:`export_corim`) turns a boot policy document (the
:func:`~trustedge.measuredboot.load_policy` format) into a CoRIM: one CoMID tag whose
reference triples describe one target environment (``class-map`` vendor/model) with a
measurement per rule. Signed CoRIMs are COSE_Sign1 (tag 18) with the draft's protected
header (``content-type`` ``application/rim+cbor``, ``corim-meta`` naming the signer and
the validity), through :mod:`trustedge.cose`.

Import (:func:`decode_corim`, :func:`verify_signed_corim`, :func:`import_corim`) reads
any CoRIM through :mod:`trustedge._cbor` with limits, and converts the measurements of
the trustedge profile (below) back into policy rules; everything else it meets is
reported as unconverted, never silently dropped.

The trustedge profile (``tag:trustedge.dev,2026:tpm-boot/v1``), one measurement-map per rule:

==========================  ==============================================================
rule                        measurement-map
==========================  ==============================================================
``pcr_values``              ``mval.integrity-registers {pcr: [[alg, value]]}``, one map per
                            allowed value (alternatives)
``event_digests`` /         ``mkey "event-digests/pcrN"`` / ``"measurements/pcrN"``,
``measurements``            ``mval.digests`` (any of)
``boot_applications``       ``mkey "boot-applications"``, ``mval.digests``
``secure_boot``             ``mkey "secure-boot"``, ``mval.flags {is-secure: true}``
``db`` / ``dbx``            ``mkey "db/required"`` (``forbidden``, ``allowed``), ``mval.digests``
                            of sha256 entry identifiers
``kernel_cmdline``          ``mkey "kernel-cmdline/required"`` (``forbidden``), one
                            ``mval.raw-value`` #6.560(UTF-8 pattern) per map
==========================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from trustedge import _cbor
from trustedge.cose import PrivateKey, PublicKey, create_sign1, sign1_from_item, verify_sign1
from trustedge.errors import MalformedInputError, PolicyError, SignatureError

__all__ = [
    "PROFILE",
    "CorimImport",
    "UnverifiedCorim",
    "decode_corim",
    "export_corim",
    "import_corim",
    "verify_signed_corim",
]

PROFILE: Final = "tag:trustedge.dev,2026:tpm-boot/v1"
CONTENT_TYPE: Final = "application/rim+cbor"
_CORIM_TAG: Final = 501
_COMID_TAG: Final = 506
_SIGN1_TAG: Final = 18
_URI_TAG: Final = 32
_BYTES_TAG: Final = 560
_LIMITS: Final = _cbor.DecodeLimits(max_size=16 << 20, max_depth=24, max_items=1_000_000)
#: Named Information hash algorithm ids (IANA), as CoRIM digests use them.
_ALG_ID: Final = {"sha256": 1, "sha384": 7, "sha512": 8}
_ALG_NAME: Final = {v: k for k, v in _ALG_ID.items()}
# measurement-values-map keys
_DIGESTS, _FLAGS, _RAW, _IREGS = 2, 3, 4, 14


@dataclass(frozen=True)
class UnverifiedCorim:
    """A decoded CoRIM (its signature, if any, not checked): the corim-map and its CoMIDs."""

    corim: dict[Any, Any]
    comids: tuple[dict[Any, Any], ...]
    signed: bool
    signer_name: str | None = None


@dataclass(frozen=True)
class CorimImport:
    """Policy rules read from a CoRIM, and what the trustedge profile does not cover."""

    document: dict[str, Any]
    environments: tuple[dict[str, Any], ...]
    unconverted: tuple[str, ...]


def _digest_list(values: Sequence[str], bank: str) -> list[list[Any]]:
    if bank not in _ALG_ID:
        raise MalformedInputError(f"CoRIM export supports sha256/384/512 banks, not {bank!r}")
    return [[_ALG_ID[bank], bytes.fromhex(v)] for v in values]


def _measurements(rule: Mapping[str, Any]) -> list[dict[int, Any]]:
    kind = rule.get("rule")
    bank = str(rule.get("bank", "sha256"))
    if kind == "pcr_values":
        pcr = int(rule["pcr"])
        return [{1: {_IREGS: {pcr: _digest_list([v], bank)}}} for v in rule["values"]]
    if kind in ("event_digests", "measurements"):
        name = "event-digests" if kind == "event_digests" else "measurements"
        return [
            {0: f"{name}/pcr{int(rule['pcr'])}", 1: {_DIGESTS: _digest_list(rule["digests"], bank)}}
        ]
    if kind == "boot_applications":
        return [{0: "boot-applications", 1: {_DIGESTS: _digest_list(rule["digests"], bank)}}]
    if kind == "secure_boot":
        return [{0: "secure-boot", 1: {_FLAGS: {1: bool(rule.get("enabled", True))}}}]
    if kind in ("db", "dbx"):
        out = []
        for part in ("required", "forbidden", "allowed"):
            if rule.get(part):
                out.append({0: f"{kind}/{part}", 1: {_DIGESTS: _digest_list(rule[part], "sha256")}})
        return out
    if kind == "kernel_cmdline":
        return [
            {0: f"kernel-cmdline/{part}", 1: {_RAW: _cbor.CBORTag(_BYTES_TAG, p.encode())}}
            for part in ("required", "forbidden")
            for p in rule.get(part, [])
        ]
    raise MalformedInputError(f"rule {kind!r} has no CoRIM form in the trustedge profile")


def export_corim(
    policy: Mapping[str, Any],
    *,
    corim_id: str,
    vendor: str,
    model: str,
    tag_id: str | None = None,
    signer: PrivateKey | None = None,
    signer_name: str = "trustedge",
    not_after: int | None = None,
) -> bytes:
    """A CoRIM holding ``policy``'s rules as reference values (signed when ``signer`` is given)."""
    rules = policy.get("rules")
    if not isinstance(rules, list):
        raise MalformedInputError("a boot policy document has a 'rules' list")
    claims = [m for rule in rules for m in _measurements(rule)]
    if not claims:
        raise MalformedInputError("the policy has no rule to export")
    environment = {0: {1: vendor, 2: model}}
    comid = {1: {0: tag_id or corim_id}, 4: {0: [[environment, claims]]}}
    corim: dict[int, Any] = {
        0: corim_id,
        1: [_cbor.CBORTag(_COMID_TAG, _cbor.encode(comid))],
        3: _cbor.CBORTag(_URI_TAG, PROFILE),
    }
    if not_after is not None:
        corim[4] = {1: _cbor.CBORTag(1, not_after)}
    payload = _cbor.encode(_cbor.CBORTag(_CORIM_TAG, corim))
    if signer is None:
        return payload
    meta: dict[int, Any] = {0: {0: signer_name}}
    if not_after is not None:
        meta[1] = {1: _cbor.CBORTag(1, not_after)}
    return create_sign1(payload, signer, protected={3: CONTENT_TYPE, 8: _cbor.encode(meta)})


def _untag(item: Any, tag: int, what: str) -> Any:
    if not isinstance(item, _cbor.CBORTag) or item.tag != tag:  # not secret: a CBOR tag number
        raise MalformedInputError(f"{what} must carry CBOR tag {tag}")
    return item.value


def _corim_from_payload(payload: bytes) -> tuple[dict[Any, Any], tuple[dict[Any, Any], ...]]:
    corim = _untag(_cbor.decode(payload, limits=_LIMITS), _CORIM_TAG, "unsigned-corim-map")
    if not isinstance(corim, dict) or 0 not in corim or not isinstance(corim.get(1), list):
        raise MalformedInputError("corim-map needs id (0) and tags (1)")
    comids = []
    for tag in corim[1]:
        if isinstance(tag, _cbor.CBORTag) and tag.tag == _COMID_TAG:
            if not isinstance(tag.value, bytes):
                raise MalformedInputError("a tagged concise-mid-tag wraps a byte string")
            comid = _cbor.decode(tag.value, limits=_LIMITS)
            if not isinstance(comid, dict) or 1 not in comid or not isinstance(comid.get(4), dict):
                raise MalformedInputError("concise-mid-tag needs tag-identity (1) and triples (4)")
            comids.append(comid)
    return corim, tuple(comids)


def decode_corim(data: bytes) -> UnverifiedCorim:
    """Decode a CoRIM, unsigned (#6.501) or signed (#6.18 COSE_Sign1), without checking
    a signature. Use :func:`verify_signed_corim` before trusting a signed one."""
    item = _cbor.decode(data, limits=_LIMITS)
    if isinstance(item, _cbor.CBORTag) and item.tag == _SIGN1_TAG:
        message = sign1_from_item(item)
        if message.payload is None:
            raise MalformedInputError("detached or hash-envelope CoRIM payloads are not supported")
        corim, comids = _corim_from_payload(message.payload)
        return UnverifiedCorim(corim, comids, True, _signer_name(message.protected))
    corim, comids = _corim_from_payload(data)
    return UnverifiedCorim(corim, comids, False)


def _signer_name(protected: Mapping[Any, Any]) -> str | None:
    if protected.get(3) != CONTENT_TYPE:
        raise MalformedInputError(f"signed CoRIM content-type must be {CONTENT_TYPE!r}")
    raw = protected.get(8)
    if not isinstance(raw, bytes):
        raise MalformedInputError("signed CoRIM lacks corim-meta (8)")
    meta = _cbor.decode(raw, limits=_LIMITS)
    if not isinstance(meta, dict) or not isinstance(meta.get(0), dict):
        raise MalformedInputError("corim-meta needs a signer map")
    name = meta[0].get(0)
    return name if isinstance(name, str) else None


def _time(value: Any) -> int:
    if isinstance(value, _cbor.CBORTag) and value.tag == 1:
        value = value.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedInputError("CoRIM times must be epoch-based (tag 1) integers")
    return value


def verify_signed_corim(data: bytes, keys: Sequence[PublicKey], *, now: int) -> UnverifiedCorim:
    """Verify a signed CoRIM with one of ``keys`` and its validity at ``now``; return it decoded.

    Raises SignatureError (no key verifies), PolicyError (outside its validity) or
    MalformedInputError.
    """
    item = _cbor.decode(data, limits=_LIMITS)
    if not isinstance(item, _cbor.CBORTag) or item.tag != _SIGN1_TAG:
        raise SignatureError("the CoRIM is not signed")
    message = sign1_from_item(item)
    if not keys:
        raise SignatureError("no key to verify the CoRIM with")
    payload = None
    for key in keys:
        try:
            payload = verify_sign1(message, key)
            break
        except SignatureError:
            continue
    if payload is None:
        raise SignatureError("the CoRIM signature does not verify with any given key")
    name = _signer_name(message.protected)
    corim, comids = _corim_from_payload(payload)
    for validity in (corim.get(4), _meta_validity(message.protected)):
        if validity is None:
            continue
        if not isinstance(validity, dict) or 1 not in validity:
            raise MalformedInputError("validity-map needs not-after (1)")
        if now >= _time(validity[1]) or (0 in validity and now < _time(validity[0])):
            raise PolicyError("the CoRIM is outside its validity period")
    return UnverifiedCorim(corim, comids, True, name)


def _meta_validity(protected: Mapping[Any, Any]) -> Any:
    meta = _cbor.decode(protected[8], limits=_LIMITS)
    return meta.get(1) if isinstance(meta, dict) else None


def _hexes(digests: Any, what: str) -> tuple[str, list[str]]:
    if not isinstance(digests, list) or not digests:
        raise MalformedInputError(f"{what}: digests must be a non-empty list")
    banks, values = set(), []
    for entry in digests:
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], bytes)
                or entry[0] not in _ALG_NAME):  # fmt: skip
            raise MalformedInputError(f"{what}: unsupported digest {entry!r:.60}")
        banks.add(_ALG_NAME[entry[0]])
        values.append(entry[1].hex())
    if len(banks) != 1:
        raise MalformedInputError(f"{what}: digests of one algorithm expected")
    return banks.pop(), values


def import_corim(corim: UnverifiedCorim, *, any_profile: bool = False) -> CorimImport:
    """Convert the trustedge-profile measurements of ``corim`` into a boot policy document.

    Pass the result of :func:`verify_signed_corim` for a signed CoRIM (a decoded but
    unverified one is for inspection). A CoRIM of another profile converts to no rule
    (its register numbers and keys mean something else) unless ``any_profile``: then
    its integrity registers are read as PCRs and its trustedge-named measurements as
    rules. Unknown measurements, algorithms, triples and profiles are reported in
    ``unconverted``.
    """
    unconverted: list[str] = []
    profile = corim.corim.get(3)
    if not (isinstance(profile, _cbor.CBORTag) and profile.value == PROFILE):
        unconverted.append(f"profile {profile!r:.80} is not the trustedge profile")
        if not any_profile:
            return CorimImport({"version": 1, "rules": []}, (), tuple(unconverted))
    pcr_values: dict[tuple[int, str], list[str]] = {}
    rules: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    environments: list[dict[str, Any]] = []
    for n, comid in enumerate(corim.comids):
        triples = comid[4]
        for key in triples:
            if key != 0:
                unconverted.append(f"CoMID {n}: triples of kind {key} (only reference triples)")
        for env, claims in _reference_triples(triples.get(0, []), n):
            environments.append(env)
            for claim in claims:
                _claim(claim, pcr_values, rules, by_key, unconverted)
    for (pcr, bank), values in sorted(pcr_values.items()):
        rules.insert(0, {"rule": "pcr_values", "pcr": pcr, "bank": bank, "values": values})
    return CorimImport({"version": 1, "rules": rules}, tuple(environments), tuple(unconverted))


def _reference_triples(triples: Any, n: int) -> list[tuple[dict[str, Any], list[Any]]]:
    if not isinstance(triples, list):
        raise MalformedInputError(f"CoMID {n}: reference-triples must be a list")
    out = []
    for t in triples:
        if not isinstance(t, list) or len(t) != 2 or not isinstance(t[0], dict):
            raise MalformedInputError(f"CoMID {n}: a reference triple is [environment, [claims]]")
        if not isinstance(t[1], list):
            raise MalformedInputError(f"CoMID {n}: reference claims must be a list")
        cls = t[0].get(0, {})
        env = {"vendor": cls.get(1), "model": cls.get(2)} if isinstance(cls, dict) else {}
        out.append((env, t[1]))
    return out


def _claim(
    claim: Any,
    pcr_values: dict[tuple[int, str], list[str]],
    rules: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    unconverted: list[str],
) -> None:
    if not isinstance(claim, dict) or not isinstance(claim.get(1), dict):
        raise MalformedInputError("a measurement-map needs mval (1)")
    mkey, mval = claim.get(0), claim[1]
    if mkey is None and set(mval) == {_IREGS} and isinstance(mval[_IREGS], dict):
        for pcr, digests in mval[_IREGS].items():
            if isinstance(pcr, bool) or not isinstance(pcr, int) or not 0 <= pcr <= 23:
                unconverted.append(f"integrity register {pcr!r:.40} is not a PCR index")
                continue
            if not isinstance(digests, list) or not digests:
                raise MalformedInputError(f"PCR{pcr}: digests must be a non-empty list")
            for entry in digests:
                if (
                    not isinstance(entry, list)
                    or len(entry) != 2
                    or not isinstance(entry[1], bytes)
                ):
                    raise MalformedInputError(f"PCR{pcr}: a digest is [alg, bytes]")
                if entry[0] not in _ALG_NAME:
                    unconverted.append(f"PCR{pcr}: digest algorithm {entry[0]!r:.30} not supported")
                    continue
                pcr_values.setdefault((pcr, _ALG_NAME[entry[0]]), []).append(entry[1].hex())
        return
    if not isinstance(mkey, str):
        unconverted.append(f"measurement with mkey {mkey!r:.40} (not in the trustedge profile)")
        return
    head, _, part = mkey.partition("/")
    if mkey == "secure-boot" and mval.get(_FLAGS) == {1: True}:
        rules.append({"rule": "secure_boot"})
    elif mkey == "secure-boot" and mval.get(_FLAGS) == {1: False}:
        rules.append({"rule": "secure_boot", "enabled": False})
    elif (
        head in ("event-digests", "measurements") and part.startswith("pcr") and part[3:].isdigit()
    ):
        bank, values = _hexes(mval.get(_DIGESTS), mkey)
        kind = "event_digests" if head == "event-digests" else "measurements"
        rules.append({"rule": kind, "pcr": int(part[3:]), "bank": bank, "digests": values})
    elif mkey == "boot-applications":
        bank, values = _hexes(mval.get(_DIGESTS), mkey)
        rules.append({"rule": "boot_applications", "bank": bank, "digests": values})
    elif head in ("db", "dbx") and part in ("required", "forbidden", "allowed"):
        _, values = _hexes(mval.get(_DIGESTS), mkey)
        rule = by_key.setdefault((head, ""), {"rule": head})
        if len(rule) == 1:
            rules.append(rule)
        rule.setdefault(part, []).extend(values)
    elif head == "kernel-cmdline" and part in ("required", "forbidden"):
        raw = mval.get(_RAW)
        if not (
            isinstance(raw, _cbor.CBORTag)
            and raw.tag == _BYTES_TAG
            and isinstance(raw.value, bytes)
        ):
            raise MalformedInputError(f"{mkey}: raw-value must be #6.560(bytes)")
        try:
            pattern = raw.value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInputError(f"{mkey}: pattern is not UTF-8") from None
        rule = by_key.setdefault(("kernel_cmdline", ""), {"rule": "kernel_cmdline"})
        if len(rule) == 1:
            rules.append(rule)
        rule.setdefault(part, []).append(pattern)
    else:
        unconverted.append(f"measurement {mkey!r:.60} (not in the trustedge profile)")
