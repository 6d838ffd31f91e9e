"""Enrollment: EK certificate check and credential activation, and nothing else.

:class:`Enrollment` registers a device and binds its AK the way a TPM proves
it: :meth:`Enrollment.enroll` checks the device's EK certificate against the
configured roots (:class:`TrustAnchors`), then seals a random secret to the EK
with MakeCredential, bound to the AK's name; :meth:`Enrollment.complete`
binds the AK to the device only when the device returns that secret (the TPM
releases it only if the AK and the EK live in the same TPM).
:meth:`Enrollment.enrolled_device` gives the appraisal core
(:func:`trustedge.attestation.appraisal.appraise`) what enrollment established:
the AK, whether the device is revoked, and what its EK certificate proves.

It holds no result-signing key and issues no nonces; time (``now``) and
randomness (``random``) are passed in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography import x509

from trustedge.attestation._signing import PrivateKey
from trustedge.attestation.appraisal import EnrolledDevice, FindingItem
from trustedge.attestation.ear import VerifierId
from trustedge.attestation.ekcert import verify_ek_certificate
from trustedge.attestation.findings import Finding
from trustedge.attestation.quote import AttestationKey
from trustedge.attestation.store import (
    DeviceRecord,
    EnrollmentChallenge,
    EnrollmentState,
    VerifierStore,
)
from trustedge.errors import MalformedInputError, VerificationError
from trustedge.hazmat.tpm2 import Credential, Public, make_credential

__all__ = ["Enrollment", "TrustAnchors"]

#: TPM models in EK certificates of software TPMs (``SoftwareTPM``).
_SOFTWARE_MODELS: Final = frozenset({"trustedge-software-tpm"})
_CACHE_MAX: Final = 4096


@dataclass(frozen=True)
class TrustAnchors:
    """Roots the verifier trusts (and, for the :class:`~trustedge.attestation.Verifier`'s
    convenience, the key it signs results with).

    ``ek_roots`` are TPM manufacturers' roots: an EK chaining to one earns
    the *genuine hardware* claim. ``software_roots`` are CAs of software TPMs
    (``SoftwareTPM.ek_ca_certificate()``): their devices may enroll but are
    labelled software and never claim genuine hardware. ``intermediates``
    help build chains. ``allow_uncertified_ek`` admits devices that present
    an EK without a certificate (pinned by the operator; no hardware claim).

    ``signing_key``, ``result_format`` and ``verifier_id`` configure the
    :class:`~trustedge.attestation.signer.ResultSigner` a ``Verifier`` builds
    when it is given none; enrollment and challenges need no key (``None``).
    """

    signing_key: PrivateKey | None = None
    ek_roots: tuple[x509.Certificate, ...] = ()
    software_roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    allow_uncertified_ek: bool = False
    result_format: Literal["jwt", "cwt"] = "jwt"
    verifier_id: VerifierId = field(
        default_factory=lambda: VerifierId(build="trustedge", developer="trustedge")
    )


def _utc(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


class Enrollment:
    """Device enrollment over a :class:`VerifierStore` (see the module docstring).

    ``ttl`` is the lifetime of a credential challenge in seconds; ``now``
    returns POSIX seconds, ``random`` n random bytes.
    """

    def __init__(
        self,
        store: VerifierStore,
        anchors: TrustAnchors,
        *,
        ttl: int = 300,
        now: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.store = store
        self.anchors = anchors
        self.ttl = ttl
        self._now = now
        self._random = random
        self._aks: dict[bytes, AttestationKey] = {}
        self._ek_checks: dict[bytes, FindingItem] = {}

    def now(self) -> int:
        return int(self._now())

    def enroll(
        self,
        device_id: str,
        *,
        ek_public: bytes,
        ak_public: bytes,
        ek_certificate: bytes | None = None,
    ) -> Credential:
        """Register the device and return its credential-activation challenge.

        ``ek_public``/``ak_public`` are ``TPM2B_PUBLIC`` bytes. The EK
        certificate must chain to ``ek_roots`` or ``software_roots`` and
        certify ``ek_public`` (without one, ``allow_uncertified_ek`` must be
        set). Raises ``VerificationError`` when it does not,
        ``MalformedInputError`` for unparsable keys, ``ValueError`` when the
        device id is registered with another EK.
        """
        ek = Public.unmarshal_tpm2b(ek_public)
        ak = Public.unmarshal_tpm2b(ak_public)
        if ek_certificate is not None:
            self.check_ek_certificate(ek_certificate, ek)
        elif not self.anchors.allow_uncertified_ek:
            raise VerificationError("EK certificate required (allow_uncertified_ek is off)")
        existing = self.store.get_device(device_id)
        if existing is None:
            self.store.add_device(
                DeviceRecord(
                    device_id=device_id,
                    ek_public=ek_public,
                    ek_certificate=ek_certificate,
                    updated_at=self.now(),
                )
            )
        elif not hmac.compare_digest(existing.ek_public, ek_public):
            raise ValueError(f"device {device_id!r} is registered with another EK")
        secret = self._random(32)
        ak_name = ak.name()
        self.store.put_enrollment_challenge(
            EnrollmentChallenge(
                device_id=device_id,
                ak_public=ak_public,
                ak_name=ak_name,
                secret_digest=EnrollmentChallenge.digest(secret),
                expires_at=self.now() + self.ttl,
            )
        )
        return make_credential(ek, secret, ak_name, randbytes=self._random)

    def complete(self, device_id: str, secret: bytes) -> DeviceRecord:
        """Bind the pending AK if ``secret`` is the one sealed by :meth:`enroll`.

        The challenge is single use. Raises ``NonceError`` (no pending
        challenge), ``ExpiredError`` or ``VerificationError`` (wrong secret:
        activation failed, the AK is not bound).
        """
        challenge = self.store.take_enrollment_challenge(device_id, self.now())
        challenge.verify_secret(secret)
        return self.store.bind_ak(device_id, challenge.ak_public, challenge.ak_name, self.now())

    def check_ek_certificate(self, certificate: bytes, ek: Public) -> Finding:
        """Verify the EK certificate (chain, validity at ``now``, key) and say what it proves:
        ``Finding.HARDWARE_TPM`` (chains to an ``ek_roots`` entry, not a software model)
        or ``Finding.SOFTWARE_TPM``. Raises ``VerificationError``/``MalformedInputError``."""
        roots = self.anchors.ek_roots + self.anchors.software_roots
        if not roots:
            raise VerificationError("no EK roots configured")
        verified = verify_ek_certificate(
            certificate,
            roots=list(roots),
            intermediates=list(self.anchors.intermediates),
            now=_utc(self.now()),
            ek_public_key=ek.public_key(),
        )
        anchor = verified.chain[-1]
        # A software TPM is never genuine hardware, even when its CA was
        # (mis)configured as a hardware root.
        if verified.tpm_model in _SOFTWARE_MODELS:
            return Finding.SOFTWARE_TPM
        if any(anchor == root for root in self.anchors.ek_roots):
            return Finding.HARDWARE_TPM
        return Finding.SOFTWARE_TPM

    def enrolled_device(self, device: DeviceRecord | None) -> EnrolledDevice | None:
        """What :func:`~trustedge.attestation.appraisal.appraise` needs of a stored device.

        ``None`` when the device is unknown or its AK is not bound yet. The EK
        certificate is re-checked (at ``now``; results cached per certificate and
        EK): an invalid one becomes the ``ek-cert-invalid`` finding, not an error.
        """
        if device is None or device.ak_public is None:
            return None
        key = self._aks.get(device.ak_public)
        if key is None:
            key = AttestationKey.from_public(Public.unmarshal_tpm2b(device.ak_public))
            if len(self._aks) > _CACHE_MAX:
                self._aks.clear()
            self._aks[device.ak_public] = key
        return EnrolledDevice(
            device.device_id,
            device.ak_public,
            key,
            revoked=device.state is EnrollmentState.REVOKED,
            ek_check=self._ek_check(device),
        )

    def _ek_check(self, device: DeviceRecord) -> FindingItem | None:
        cert = device.ek_certificate
        if cert is None:
            return None
        cache_key = hashlib.sha256(cert + device.ek_public).digest()
        finding = self._ek_checks.get(cache_key)
        if finding is None:
            try:
                finding = self.check_ek_certificate(cert, Public.unmarshal_tpm2b(device.ek_public))
            except (VerificationError, MalformedInputError) as exc:
                finding = (Finding.EK_CERT_INVALID, str(exc))
            if len(self._ek_checks) > _CACHE_MAX:
                self._ek_checks.clear()
            self._ek_checks[cache_key] = finding
        return finding
