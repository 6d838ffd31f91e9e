"""The trust-root document: who may sign firmware, and who may change that.

A trust root is a deterministic-CBOR map, signed as a COSE_Sign (tag 98)::

    {"type": "trustedge-trust-root", "version": N, "expires": <unix seconds>,
     "keys": {key-id: COSE_Key},
     "roles": {"root": {"keys": [key-id...], "threshold": k},
               "firmware": {"keys": [key-id...], "threshold": k}},
     "floor_reset": {component-id-cbor: seq}}          # optional

Optional per-component firmware roles are named ``"firmware/<hex of the
component id's CBOR>"``; a manifest touching that component needs that role's
threshold instead of the general ``firmware`` role's (every component's role
must be satisfied).

Rules (borrowed from TUF's root role):

* key id = SHA-256 of the key's public COSE_Key (:func:`trustedge.cose.key_id`);
  a key whose id does not match its entry is rejected; ``kid`` headers are
  never used to choose keys;
* the first root is provisioned out of band and must carry a threshold of its
  own root-role signatures; version N+1 must be signed by a threshold of the
  root role of N **and** of N+1, with version exactly N+1, one step at a time
  (:meth:`TrustRoot.rotate`); each distinct key counts once;
* revocation = dropping a key from a role in N+1;
* ``expires`` is checked against a ``now`` the caller passes in
  (:meth:`TrustRoot.check_fresh`): an expired root authorises nothing;
* ``floor_reset`` (fast-forward recovery) only takes effect through rotation,
  hence only with a root-threshold signature.

Failures raise SignatureError, ExpiredError, RollbackError (version not N+1)
or MalformedInputError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from trustedge import _cbor
from trustedge.cose import (
    PrivateKey,
    PublicKey,
    create_sign,
    decode_sign,
    key_from_map,
    key_id,
    key_to_map,
    verify_sign,
)
from trustedge.errors import (
    ExpiredError,
    MalformedInputError,
    RollbackError,
    SignatureError,
    UnsupportedAlgorithmError,
)
from trustedge.ota.suit.auth import KeySet

__all__ = ["Role", "TrustRoot", "add_signatures", "build_trust_root"]

_TYPE: Final = "trustedge-trust-root"
_LIMITS: Final = _cbor.DecodeLimits(max_size=256 * 1024, max_depth=8, max_items=20_000)
_ROLES: Final = ("root", "firmware")


@dataclass(frozen=True)
class Role:
    """Key ids allowed for a role and how many distinct ones must sign."""

    keys: tuple[bytes, ...]
    threshold: int


@dataclass(frozen=True)
class TrustRoot:
    """A verified trust root. Obtain one only via :meth:`load` or :meth:`rotate`."""

    version: int
    expires: int
    keys: Mapping[bytes, PublicKey]
    roles: Mapping[str, Role]
    floor_reset: Mapping[bytes, int]
    signed: bytes

    def keyset(self, role: str) -> KeySet:
        """The keys and threshold of ``role`` (for :func:`trustedge.ota.suit.authenticate`)."""
        r = self.roles[role]
        return KeySet({k: self.keys[k] for k in r.keys}, r.threshold)

    def keysets_for(self, components: Sequence[bytes]) -> list[KeySet]:
        """The distinct key sets a manifest touching ``components`` (CBOR component
        ids) must satisfy: each component's own role, else the ``firmware`` role."""
        names = dict.fromkeys(self.role_for(cid) for cid in components)
        return [self.keyset(name) for name in names]

    def role_for(self, component: bytes) -> str:
        """The role that must sign for ``component`` (CBOR component id): its own
        ``firmware/<hex>`` role when this root has one, else ``firmware``."""
        name = _component_role(component)
        return name if name in self.roles else "firmware"

    def check_fresh(self, now: int) -> None:
        """Raise ExpiredError when ``now`` (unix seconds) is at or past ``expires``."""
        if now >= self.expires:
            raise ExpiredError(f"trust root version {self.version} expired at {self.expires}")

    @classmethod
    def load(cls, signed: bytes, *, now: int | None = None) -> TrustRoot:
        """Verify a self-signed (provisioned) root: its own root threshold must sign."""
        doc, msg = _parse(signed)
        _require(doc, msg, doc.roles["root"], doc.keys, "its own root role")
        if now is not None:
            doc.check_fresh(now)
        return doc

    def rotate(self, signed: bytes, *, now: int | None = None) -> TrustRoot:
        """Verify root N+1 against this root N; return it.

        Raises RollbackError unless the version is exactly ``self.version + 1``,
        SignatureError unless thresholds of both N and N+1 root roles signed,
        ExpiredError when ``now`` is given and N+1 is expired.
        """
        doc, msg = _parse(signed)
        if doc.version != self.version + 1:
            raise RollbackError(f"trust root version {doc.version} does not follow {self.version}")
        _require(doc, msg, self.roles["root"], self.keys, f"root version {self.version}")
        _require(doc, msg, doc.roles["root"], doc.keys, f"root version {doc.version}")
        if now is not None:
            doc.check_fresh(now)
        return doc

    def rotate_chain(self, chain: Sequence[bytes], *, now: int) -> TrustRoot:
        """Apply rotations one by one; only the final root's expiry is checked."""
        root = self
        for signed in chain:
            root = root.rotate(signed)
        root.check_fresh(now)
        return root


def _require(
    doc: TrustRoot, msg: Any, role: Role, keys: Mapping[bytes, PublicKey], what: str
) -> None:
    verified: set[bytes] = set()
    for sig in msg.signatures:
        for kid in role.keys:
            if kid in verified:
                continue
            try:
                verify_sign(msg, sig, keys[kid])
            except (SignatureError, MalformedInputError):
                continue
            verified.add(kid)
            break
    if len(verified) < role.threshold:
        raise SignatureError(
            f"trust root version {doc.version}: {len(verified)} of {role.threshold} "
            f"signatures of {what}"
        )


def _uint(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise MalformedInputError(f"{what} must be an unsigned integer")
    return v


def _parse(signed: bytes) -> tuple[TrustRoot, Any]:
    msg = decode_sign(signed)
    if msg.payload is None:
        raise MalformedInputError("trust root payload must be attached")
    doc = _cbor.decode(msg.payload, limits=_LIMITS, canonical=True)
    if not isinstance(doc, dict) or doc.get("type") != _TYPE:
        raise MalformedInputError("not a trustedge trust root")
    allowed = {"type", "version", "expires", "keys", "roles", "floor_reset"}
    unknown = set(doc) - allowed
    if unknown:
        raise MalformedInputError(f"unknown trust root fields {sorted(map(repr, unknown))}")
    version = _uint(doc.get("version"), "version")
    expires = _uint(doc.get("expires"), "expires")
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, dict):
        raise MalformedInputError("keys must be a map")
    keys: dict[bytes, PublicKey] = {}
    for kid, cose_key in raw_keys.items():
        try:
            key = key_from_map(cose_key)
        except UnsupportedAlgorithmError as exc:
            raise MalformedInputError(f"trust root key: {exc}") from None
        if not isinstance(
            key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
        ):
            raise MalformedInputError("trust root keys must be public signature keys")
        # not secret: a key id is the SHA-256 of a public key, both public
        if not isinstance(kid, bytes) or kid != key_id(key):
            raise MalformedInputError("key id does not match the key (must be its SHA-256)")
        keys[kid] = key
    raw_roles = doc.get("roles")
    if not isinstance(raw_roles, dict) or not set(_ROLES) <= set(raw_roles):
        raise MalformedInputError("roles must include 'root' and 'firmware'")
    for name in raw_roles:
        if name not in _ROLES and not _is_component_role(name):
            raise MalformedInputError(f"unknown role {name!r}")
    roles = {}
    for name, r in raw_roles.items():
        if not isinstance(r, dict) or set(r) != {"keys", "threshold"}:
            raise MalformedInputError(f"role {name} must have keys and threshold")
        ids = r["keys"]
        if not isinstance(ids, list) or len(set(map(_hashable, ids))) != len(ids):
            raise MalformedInputError(f"role {name}: keys must be a list without duplicates")
        if any(k not in keys for k in ids):
            raise MalformedInputError(f"role {name} names an unknown key id")
        threshold = _uint(r["threshold"], "threshold")
        if not 1 <= threshold <= len(ids):
            raise MalformedInputError(f"role {name}: threshold must be 1..{len(ids)}")
        roles[name] = Role(tuple(ids), threshold)
    resets = doc.get("floor_reset", {})
    if not isinstance(resets, dict) or not all(isinstance(k, bytes) for k in resets):
        raise MalformedInputError("floor_reset must map component ids to sequence numbers")
    floor_reset = {k: _uint(v, "floor_reset value") for k, v in resets.items()}
    return TrustRoot(version, expires, keys, roles, floor_reset, signed), msg


def _component_role(cid: bytes) -> str:
    return "firmware/" + cid.hex()


def _is_component_role(name: object) -> bool:
    if not isinstance(name, str) or not name.startswith("firmware/"):
        return False
    try:
        return bool(bytes.fromhex(name[len("firmware/") :]))
    except ValueError:
        return False


def _hashable(v: object) -> object:
    if not isinstance(v, bytes):
        raise MalformedInputError("key ids must be byte strings")
    return v


def build_trust_root(
    *,
    version: int,
    expires: int,
    root_keys: Sequence[PublicKey],
    root_threshold: int,
    firmware_keys: Sequence[PublicKey],
    firmware_threshold: int,
    signers: Sequence[PrivateKey],
    floor_reset: Mapping[bytes, int] | None = None,
    component_roles: Mapping[bytes, tuple[Sequence[PublicKey], int]] | None = None,
) -> bytes:
    """Create and sign a trust-root document (COSE_Sign, one signature per signer).

    For rotation, ``signers`` must include a threshold of the *previous* root
    keys as well as of the new ones; :meth:`TrustRoot.rotate` checks both.
    """
    roles_extra = dict(component_roles or {})
    extra_keys = [k for keys, _ in roles_extra.values() for k in keys]
    all_keys = {key_id(k): k for k in (*root_keys, *firmware_keys, *extra_keys)}
    doc: dict[str, Any] = {
        "type": _TYPE,
        "version": version,
        "expires": expires,
        "keys": {kid: key_to_map(k) for kid, k in all_keys.items()},
        "roles": {
            "root": {"keys": [key_id(k) for k in root_keys], "threshold": root_threshold},
            "firmware": {
                "keys": [key_id(k) for k in firmware_keys],
                "threshold": firmware_threshold,
            },
        },
    }
    for cid, (keys, threshold) in roles_extra.items():
        doc["roles"][_component_role(cid)] = {
            "keys": [key_id(k) for k in keys],
            "threshold": threshold,
        }
    if floor_reset:
        doc["floor_reset"] = dict(floor_reset)
    return create_sign(_cbor.encode(doc), list(signers))


def add_signatures(signed: bytes, signers: Sequence[PrivateKey]) -> bytes:
    """Add a signature per key to a signed trust root (e.g. a second root-key
    holder signing in a ceremony). The document itself is unchanged; keys that
    already signed (same key id in the ``kid`` header) are not added twice."""
    msg = decode_sign(signed)
    if msg.payload is None:
        raise MalformedInputError("trust root payload must be attached")
    fresh = decode_sign(create_sign(msg.payload, list(signers)))
    existing = [[s.protected_raw, dict(s.unprotected), s.signature] for s in msg.signatures]
    seen = {bytes(s.unprotected.get(4, b"")) for s in msg.signatures}
    for key, sig in zip(signers, fresh.signatures, strict=True):
        kid = key_id(key.public_key())
        if kid in seen:
            continue
        seen.add(kid)
        existing.append([sig.protected_raw, {4: kid}, sig.signature])
    body = [msg.protected_raw, dict(msg.unprotected), msg.payload, existing]
    return _cbor.encode(_cbor.CBORTag(98, body))
