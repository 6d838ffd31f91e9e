"""Typed records and the :class:`VerifierStore` protocol.

Every value the verifier keeps between appraisals is one of these frozen
dataclasses; no dict blobs cross the store boundary. Times are POSIX seconds
passed in by the caller (the store never reads a clock).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from trustedge.attestation.quote import QuoteState
from trustedge.errors import VerificationError
from trustedge.hazmat.tpm2.constants import HASH_ALGS
from trustedge.measuredboot import ImaState

__all__ = [
    "DeviceRecord",
    "DeviceState",
    "EnrollmentChallenge",
    "EnrollmentState",
    "ImaState",
    "NonceRecord",
    "QuoteClockState",
    "StoredResult",
    "VerifierStore",
    "check_ima_state",
    "nonce_key",
]

_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1
#: Longest device id the stores accept (UTF-8 bytes).
MAX_DEVICE_ID: Final = 256


def _check_device_id(device_id: str) -> None:
    if not isinstance(device_id, str) or not device_id:
        raise ValueError("device_id must be a non-empty string")
    if len(device_id.encode("utf-8", "surrogatepass")) > MAX_DEVICE_ID:
        raise ValueError(f"device_id longer than {MAX_DEVICE_ID} bytes")
    if not device_id.isprintable():
        raise ValueError("device_id must be printable text")


def _check_time(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64 >> 1:
        raise ValueError(f"{name} must be a non-negative POSIX time in seconds")


def nonce_key(nonce: bytes) -> bytes:
    """The key a nonce is stored under: SHA-256 of the nonce.

    Stores look nonces up by this digest, never by the nonce itself, so a
    database index lookup cannot leak the nonce's bytes through timing and a
    stolen database does not hold live nonces.
    """
    return hashlib.sha256(nonce).digest()


class EnrollmentState(enum.Enum):
    """Where a device is in its life: registered, AK bound, or revoked."""

    REGISTERED = "registered"
    ENROLLED = "enrolled"
    REVOKED = "revoked"


@dataclass(frozen=True)
class DeviceRecord:
    """One device known to the verifier.

    ``ek_public`` is the endorsement key as given at registration (TPM2B_PUBLIC
    bytes or a DER SubjectPublicKeyInfo); ``ek_certificate`` its DER
    certificate when the device has one. ``ak_public`` (TPM2B_PUBLIC bytes) and
    ``ak_name`` are set only once credential activation has bound the AK.
    """

    device_id: str
    ek_public: bytes
    ek_certificate: bytes | None = None
    ak_public: bytes | None = None
    ak_name: bytes | None = None
    state: EnrollmentState = EnrollmentState.REGISTERED
    updated_at: int = 0

    def __post_init__(self) -> None:
        _check_device_id(self.device_id)
        _check_time("updated_at", self.updated_at)
        if not isinstance(self.state, EnrollmentState):
            raise TypeError("state must be an EnrollmentState")
        if self.state is EnrollmentState.ENROLLED and (
            self.ak_public is None or self.ak_name is None
        ):
            raise ValueError("an enrolled device needs ak_public and ak_name")


@dataclass(frozen=True)
class EnrollmentChallenge:
    """A pending credential-activation challenge.

    The verifier keeps only ``secret_digest`` (SHA-256 of the credential
    secret sealed to the EK), never the secret. The challenge is single-use:
    :meth:`VerifierStore.take_enrollment_challenge` removes it atomically.
    """

    device_id: str
    ak_public: bytes
    ak_name: bytes
    secret_digest: bytes
    expires_at: int

    def __post_init__(self) -> None:
        _check_device_id(self.device_id)
        _check_time("expires_at", self.expires_at)
        if len(self.secret_digest) != 32:
            raise ValueError("secret_digest must be a SHA-256 digest (32 bytes)")

    @staticmethod
    def digest(secret: bytes) -> bytes:
        """What to store for a credential secret: its SHA-256."""
        return hashlib.sha256(secret).digest()

    def verify_secret(self, secret: bytes) -> None:
        """Check the secret the device recovered with TPM2_ActivateCredential.

        Constant-time comparison of its SHA-256 with ``secret_digest``;
        raises :class:`~trustedge.errors.VerificationError` on a mismatch
        (credential activation failed: the AK and EK are not in one TPM).
        """
        if not hmac.compare_digest(self.digest(bytes(secret)), self.secret_digest):
            raise VerificationError("credential activation failed: wrong secret")


@dataclass(frozen=True)
class NonceRecord:
    """A nonce issued to one device, valid until ``expires_at`` (exclusive)."""

    nonce: bytes
    device_id: str
    expires_at: int

    def __post_init__(self) -> None:
        _check_device_id(self.device_id)
        _check_time("expires_at", self.expires_at)
        if not 16 <= len(self.nonce) <= 64:
            raise ValueError("a nonce must be 16 to 64 bytes")


#: The quote-clock state is :class:`trustedge.attestation.quote.QuoteState`, stored as
#: is; this name is kept for the store's callers (one class, two names).
QuoteClockState = QuoteState

#: IMA banks the store accepts.
_IMA_BANKS: Final = frozenset(h.name for h in HASH_ALGS)


def check_ima_state(state: ImaState) -> None:
    """What a stored IMA position must be (raises ``TypeError``/``ValueError`` otherwise).

    The state is :class:`trustedge.measuredboot.ImaState` as ``verify_ima_log``
    returns it: ``entries`` already replayed, ``pcr_value`` (PCR 10 after them) in
    ``bank``. Evidence carries the IMA entries *after* the stored position as a
    list of its own, so the position is always at byte 0 of the next list:
    ``byte_offset`` must be 0 (``VerifiedImaLog.state`` of a tail gives the
    bytes consumed of that tail; the verifier resets it with ``_replace``).
    """
    if not isinstance(state, ImaState):
        raise TypeError("IMA state must be a trustedge.measuredboot.ImaState")
    if isinstance(state.entries, bool) or not isinstance(state.entries, int):
        raise TypeError("entries must be an int")
    if not 0 <= state.entries <= _U32:
        raise ValueError("entries out of range")
    if state.byte_offset != 0:
        raise ValueError("a stored IMA position starts the next list: byte_offset must be 0")
    if not isinstance(state.pcr_value, bytes) or not 20 <= len(state.pcr_value) <= 64:
        raise ValueError("pcr_value must be a digest (20 to 64 bytes)")
    if state.bank not in _IMA_BANKS:
        raise ValueError(f"unknown PCR bank {state.bank!r}")


@dataclass(frozen=True)
class DeviceState:
    """Everything an appraisal reads about a device, from one consistent snapshot:
    the device record, its quote-clock and IMA state and its stored boot reference
    (:meth:`VerifierStore.get_boot_reference`)."""

    device: DeviceRecord | None
    quote: QuoteClockState | None
    ima: ImaState | None
    boot_reference: bytes | None = None


@dataclass(frozen=True)
class StoredResult:
    """The latest signed attestation result of a device, as the verifier issued it.

    ``token`` is the signed EAR (JWT text as UTF-8, or CWT bytes) and ``media_type`` its
    type (``application/eat+jwt`` or ``application/eat+cwt``); ``status`` is the result's
    trust tier, kept beside it for listing. Relying parties verify the token itself.
    """

    device_id: str
    media_type: str
    token: bytes
    status: str
    created_at: int


@runtime_checkable
class VerifierStore(Protocol):
    """What an appraisal verifier keeps between requests.

    Every mutating method is atomic (one database transaction) and safe when
    several threads and processes share the same database. Check-and-update
    methods raise instead of returning a flag:

    * :class:`~trustedge.errors.NonceError` -- nonce unknown, for another
      device, already used, or expired (an expired nonce is used up too);
    * :class:`~trustedge.errors.ExpiredError` -- enrollment challenge expired;
    * :class:`~trustedge.errors.RollbackError` -- a compare-and-set found the
      stored state changed (another appraisal won) or the new state does not
      advance;
    * :class:`~trustedge.errors.BackendError` -- the database failed;
    * ``KeyError`` -- unknown device (misuse); ``ValueError`` -- duplicate device.
    """

    # -- devices ------------------------------------------------------------
    def add_device(self, device: DeviceRecord) -> None:
        """Register a new device; ``ValueError`` if its id is taken."""
        ...

    def get_device(self, device_id: str) -> DeviceRecord | None:
        """The device record, or ``None`` when unknown."""
        ...

    def bind_ak(self, device_id: str, ak_public: bytes, ak_name: bytes, now: int) -> DeviceRecord:
        """Mark the device enrolled with this AK (after activation succeeded).

        Binding a new AK forgets the quote-clock and IMA state of the old one.
        """
        ...

    def revoke_device(self, device_id: str, now: int) -> None:
        """Mark the device revoked; its AK binding stays for the record."""
        ...

    # -- enrollment -----------------------------------------------------------
    def put_enrollment_challenge(self, challenge: EnrollmentChallenge) -> None:
        """Store the pending challenge, replacing any earlier one of the device."""
        ...

    def take_enrollment_challenge(self, device_id: str, now: int) -> EnrollmentChallenge:
        """Remove and return the pending challenge (single use).

        Raises ``NonceError`` when there is none and ``ExpiredError`` when it
        expired (it is removed either way).
        """
        ...

    # -- nonces ---------------------------------------------------------------
    def issue_nonce(self, record: NonceRecord) -> None:
        """Remember a freshly issued nonce; ``ValueError`` on a duplicate."""
        ...

    def consume_nonce(self, nonce: bytes, device_id: str, now: int) -> NonceRecord:
        """Use up a nonce exactly once, atomically across threads and processes.

        Returns the record when the nonce was issued to ``device_id``, is
        unused and ``now < expires_at``; otherwise raises ``NonceError``.
        """
        ...

    def purge_expired(self, now: int) -> int:
        """Delete expired nonces and challenges; return how many rows went."""
        ...

    # -- appraisal state -------------------------------------------------------
    def get_quote_state(self, device_id: str) -> QuoteClockState | None:
        """The clock state of the device's last accepted quote."""
        ...

    def get_ima_state(self, device_id: str) -> ImaState | None:
        """The IMA replay position of the device."""
        ...

    def device_state(self, device_id: str) -> DeviceState:
        """Device record, quote-clock and IMA state and boot reference in one read
        transaction."""
        ...

    def advance_quote_state(
        self, device_id: str, expected: QuoteClockState | None, new: QuoteClockState
    ) -> None:
        """Compare-and-set: store ``new`` only if the stored state is still ``expected``.

        ``new`` must be strictly newer than ``expected``. Of several concurrent
        callers with the same ``expected`` exactly one succeeds; the others get
        ``RollbackError``.
        """
        ...

    def advance_ima_state(self, device_id: str, expected: ImaState | None, new: ImaState) -> None:
        """Compare-and-set of the IMA state (offset may not go backwards)."""
        ...

    def record_appraisal(
        self,
        device_id: str,
        *,
        quote: tuple[QuoteClockState | None, QuoteClockState],
        ima: tuple[ImaState | None, ImaState] | None = None,
        nonce: bytes | None = None,
        now: int | None = None,
        ima_restart: bool = False,
        result: StoredResult | None = None,
    ) -> None:
        """Commit an accepted appraisal in one transaction.

        ``quote`` and ``ima`` are ``(expected, new)`` compare-and-set pairs;
        the IMA offset may drop only with ``ima_restart`` (the quote shows a
        TPM reset, so the device's IMA list started again).
        With ``nonce`` (and ``now``) the nonce is consumed in the same
        transaction, with the same rules as :meth:`consume_nonce`. With ``result``
        (for ``device_id``) the signed result becomes the device's latest
        (:meth:`put_result`) in the same transaction. Either everything applies
        or nothing does (``NonceError`` / ``RollbackError``).
        """
        ...

    def put_result(self, result: StoredResult) -> None:
        """Keep ``result`` as the device's latest (replacing the previous one)."""
        ...

    def get_result(self, device_id: str) -> StoredResult | None:
        """The device's latest result, or None."""
        ...

    def put_boot_reference(self, device_id: str, reference: bytes | None, now: int) -> None:
        """Keep ``reference`` (an encoded ``BootReference``) for the device's next
        appraisals, replacing the previous one; ``None`` drops it. ``KeyError`` for
        an unknown device."""
        ...

    def get_boot_reference(self, device_id: str) -> bytes | None:
        """The device's stored boot reference, or None."""
        ...

    def close(self) -> None:
        """Release the database connection."""
        ...
