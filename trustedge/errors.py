"""The one exception hierarchy of trustedge.

Every failure trustedge reports on purpose is a :class:`TrustedgeError`. The
subclasses say *where* the failure came from, so callers (and the CLI's exit
codes) can tell hostile input from a failed check from a missing backend:

* :class:`MalformedInputError` -- bytes that do not parse (also a ``ValueError``).
* :class:`LimitExceededError` -- input that parses but breaks a size/count/depth cap.
* :class:`VerificationError` -- well-formed input that failed a check; subclasses
  name the check (signature, rollback, expiry, replay, policy, ...).
* :class:`UnsupportedAlgorithmError` -- an algorithm or format version we do not do.
* :class:`BackendUnavailableError` / :class:`BackendError` -- the environment
  (TPM, KMS, extension) is missing or failed.

Misuse of the API (wrong argument types, impossible parameters) stays
``TypeError``/``ValueError`` and is not part of this hierarchy.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "BackendError",
    "BackendUnavailableError",
    "ChunkAuthenticationError",
    "CommitmentError",
    "ContextMismatchError",
    "ExpiredError",
    "KeyNotFoundError",
    "KeyProviderError",
    "LimitExceededError",
    "MalformedInputError",
    "NonceError",
    "PolicyError",
    "ReplayMismatchError",
    "RollbackError",
    "SignatureError",
    "TrailingDataError",
    "TrustedgeError",
    "TruncationError",
    "UnsupportedAlgorithmError",
    "VerificationError",
]


class TrustedgeError(Exception):
    """Base class of every error trustedge raises on purpose."""

    #: Short, stable label shown by the CLI before the message.
    label = "error"

    def diagnostics(self) -> str:
        """One line for humans: ``"<label>: <message>"``, no traceback."""
        text = " ".join(str(self).split()) or self.__class__.__name__
        return f"{self.label}: {text}"


class MalformedInputError(TrustedgeError, ValueError):
    """Input bytes do not follow the format.

    ``offset`` is the byte offset at which parsing failed (when known) and
    ``expected`` what the parser was looking for there.
    """

    label = "malformed input"

    def __init__(
        self, message: str, *, offset: int | None = None, expected: str | None = None
    ) -> None:
        self.offset = offset
        self.expected = expected
        parts = [message]
        if expected is not None:
            parts.append(f"expected {expected}")
        if offset is not None:
            parts.append(f"at offset {offset}")
        super().__init__(", ".join(parts))


class LimitExceededError(MalformedInputError):
    """Input exceeds a configured bound (size, count, depth, integer range)."""

    label = "limit exceeded"


class VerificationError(TrustedgeError):
    """Well-formed input that failed a security check. Verification failed closed."""

    label = "verification failed"


class SignatureError(VerificationError):
    """A signature or MAC did not verify, or too few valid signatures were found."""

    label = "bad signature"


class RollbackError(VerificationError):
    """A version, sequence number or counter went backwards (or did not advance)."""

    label = "rollback"


class ExpiredError(VerificationError):
    """A document, nonce or key is past its expiry (or not yet valid)."""

    label = "expired"


class ReplayMismatchError(VerificationError):
    """Replaying a measurement log did not give the expected PCR values.

    ``mismatches`` lists ``(bank, pcr_index)`` pairs that did not match.
    """

    label = "replay mismatch"

    def __init__(self, message: str, *, mismatches: list[tuple[str, int]] | None = None) -> None:
        self.mismatches = list(mismatches or [])
        super().__init__(message)


class PolicyError(VerificationError):
    """Evidence is authentic but violates the appraisal policy.

    ``violations`` lists every rule that failed, not just the first.
    """

    label = "policy violation"

    def __init__(self, message: str, *, violations: list[str] | None = None) -> None:
        self.violations = list(violations or [])
        super().__init__(message)


class NonceError(VerificationError):
    """A nonce is wrong, unknown, expired or already used."""

    label = "nonce"


class CommitmentError(VerificationError):
    """A key does not match the commitment it must match (wrong key / salamander)."""

    label = "key commitment"


class KeyNotFoundError(VerificationError):
    """No available key (slot, recipient, trust-root key) applies to this input."""

    label = "no matching key"


class UnsupportedAlgorithmError(TrustedgeError):
    """An algorithm, suite, version or feature that trustedge does not implement."""

    label = "unsupported"


class BackendUnavailableError(TrustedgeError):
    """A required backend (TPM, extension, optional dependency) is not available."""

    label = "backend unavailable"


class BackendError(TrustedgeError):
    """A backend (TPM, KMS) was reachable but reported a failure.

    ``code`` carries the backend's own error code when there is one.
    """

    label = "backend error"

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class ChunkAuthenticationError(VerificationError):
    """An encrypted chunk did not authenticate (tampered, reordered or at the
    wrong index). ``index`` is the zero-based chunk number (None when unknown)."""

    label = "chunk authentication"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


class TruncationError(VerificationError):
    """Encrypted data ends early: a chunk, a tag or the final short chunk is missing."""

    label = "truncated"


class TrailingDataError(VerificationError):
    """Bytes follow the end of an authenticated message."""

    label = "trailing data"


class ContextMismatchError(VerificationError):
    """The context stored with the data differs from the one the caller requires."""

    label = "context mismatch"


class AccessDeniedError(VerificationError):
    """A key holder (TPM, KMS) refused to release a key because its policy or
    authorization check failed (PCRs differ, wrong auth value). The data was not
    tampered with; this device state or caller is just not allowed to open it."""

    label = "access denied"


class KeyProviderError(BackendError):
    """A key provider (TPM, KMS) could not release or wrap a key: it was
    unavailable or failed. Not a sign of tampering, and not a policy refusal
    (that is :class:`AccessDeniedError`)."""

    label = "key provider"
