"""``SoftwareTPM``: a simulated TPM 2.0 in pure Python, behind the backend protocol.

It emits the same bytes a TPM emits (a TPMS_ATTEST and TPMT_SIGNATURE that
``tpm2_checkquote`` accepts), keeps PCR banks (sha1, sha256, sha384) with PC
Client extend/reset rules per locality, a clock with resetCount/restartCount
that move like a real TPM's, an endorsement key per TCG template with an EK
certificate issued by its own (software) CA, AKs, NV counters, sealing and
ActivateCredential. State lives in one file in ``state_dir``, rewritten
atomically after every change.

A software AK is not hardware: the quote format cannot tell the difference,
so trust must come from the AK's anchor (see docs/quotes.md). ``seed`` makes
every key, nonce and the clock deterministic -- for test vectors only.

Extra methods beyond :class:`~trustedge.hazmat.tpmbackend.TPMBackend`:
:meth:`reboot`, :meth:`resume`, :meth:`clock_info`, :meth:`qualified_name`,
:meth:`ek_ca_certificate`, the ``locality`` attribute and the ``locality=``
keyword of :meth:`pcr_extend`/:meth:`pcr_reset`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustedge import _cbor
from trustedge._fs import atomic_write
from trustedge.attestation.backends._softkeys import (
    Drbg,
    ek_certificate,
    generate_ecc,
    generate_rsa,
    manufacturer_ca,
)
from trustedge.attestation.backends._softstate import STATE_FILE, load_state
from trustedge.errors import (
    BackendError,
    MalformedInputError,
    PolicyError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import (
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    ClockInfo,
    NVCertifyInfo,
    PCRSelectionList,
    Public,
    QuoteInfo,
    Signature,
    TPMAlg,
    TPMHandle,
    ak_template,
    ek_template,
    hash_alg_by_id,
    hash_alg_by_name,
    hash_for,
    kdfa,
    pcr_composite_digest,
    qualified_name,
    recover_credential,
    with_key,
)
from trustedge.hazmat.tpm2.nv import NV_COUNTER_ATTRIBUTES, NVPublic
from trustedge.hazmat.tpm2.pcr import pcr_extendable, pcr_reset_value, pcr_resettable
from trustedge.hazmat.tpm2.policy import (
    TPM_EO_UNSIGNED_LE,
    SignedPolicy,
    policy_authorize,
    policy_nv,
    policy_pcr,
    verify_policy_signature,
    version_operand,
)
from trustedge.hazmat.tpmbackend import (
    AKAlgorithm,
    AKHandle,
    BackendInfo,
    EKKind,
    PCRSelection,
    PCRValues,
    QuoteResult,
)

__all__ = ["SOFTWARE_FIRMWARE_VERSION", "SoftwareTPM"]

#: firmwareVersion the software TPM reports ("TE" + 1.0).
SOFTWARE_FIRMWARE_VERSION: Final = 0x5445000100000000
BANKS: Final = ("sha1", "sha256", "sha384")
PCR_COUNT: Final = 24
#: The clock is checkpointed to "NV" this often (ms); an unclean reset goes back to it.
CLOCK_NV_INTERVAL: Final = 1 << 22

# TPM response codes reported in BackendError.code.
TPM_RC_ATTRIBUTES: Final = 0x082
TPM_RC_HANDLE: Final = 0x08B
TPM_RC_INTEGRITY: Final = 0x09F
TPM_RC_LOCALITY: Final = 0x907
TPM_RC_NV_DEFINED: Final = 0x14C
TPM_RC_NV_RANGE: Final = 0x146
TPM_RC_NV_UNINITIALIZED: Final = 0x14A
TPM_RC_SIZE: Final = 0x095
TPM_RC_VALUE: Final = 0x084

_SEAL_MAGIC: Final = b"TESEAL\x01"
_SEAL_AUTHORIZED: Final = b"TESEAL\x02"
_MAX_SEALED: Final = 128
_NV_FIRST: Final = 0x01000000
_NV_LAST: Final = 0x01FFFFFF


class SoftwareTPM:
    """A TPM 2.0 simulated in Python (see the module docstring).

    ``state_dir`` is created when missing; its state survives across
    instances and processes (one process at a time). Constructing an instance
    is *not* a reboot: PCRs keep their values; call :meth:`reboot`.
    ``seed`` (32+ bytes) switches a *new* state to deterministic mode.
    ``time_source`` (seconds, monotonic) drives the clock in normal mode.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        seed: bytes | None = None,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._path = self.state_dir / STATE_FILE
        self._time = time_source
        self.locality = 0
        state = load_state(self._path)
        if state is None:
            if seed is not None and len(seed) < 16:
                raise ValueError("seed must be at least 16 bytes")
            drbg = Drbg(seed)
            state = {
                "v": 1,
                "seed": seed if seed is not None else b"",
                "drbg": 0,
                "primary": drbg(32),
                "clock": 0,
                "clock_nv": 0,
                "reset": 0,
                "restart": 0,
                "safe": True,
                "pcrs": {b: [pcr_reset_value(b, i) for i in range(PCR_COUNT)] for b in BANKS},
                "eks": {},
                "aks": {},
                "nv": {},
                "nv_max": 0,
            }
            self._drbg = drbg
            self._s: dict[str, Any] = state
            self._anchor()
            self._save()
        else:
            self._s = state
            self._drbg = Drbg(state["seed"] or None, int(state["drbg"]))
            self._anchor()

    # -- state ------------------------------------------------------------------
    def _anchor(self) -> None:
        self._clock_base = int(self._s["clock"])
        self._t0 = self._time()

    def _save(self) -> None:
        self._s["drbg"] = self._drbg.counter
        atomic_write(self._path, _cbor.encode(self._s))

    def _tick(self) -> int:
        """Advance and return the clock (ms): real elapsed time, or +1 ms per
        reading in deterministic mode; always strictly increasing."""
        last = int(self._s["clock"])
        if self._drbg.deterministic:
            now = last + 1
        else:
            now = max(self._clock_base + int((self._time() - self._t0) * 1000), last + 1)
        self._s["clock"] = now
        if now - int(self._s["clock_nv"]) >= CLOCK_NV_INTERVAL:
            self._s["clock_nv"] = now
        return now

    def clock_info(self) -> ClockInfo:
        """The current TPMS_CLOCK_INFO (advances the clock, like TPM2_ReadClock)."""
        clock = self._tick()
        self._save()
        return ClockInfo(clock, int(self._s["reset"]), int(self._s["restart"]),
                         bool(self._s["safe"]))  # fmt: skip

    def reboot(self, *, orderly: bool = True, startup_locality: int = 0) -> None:
        """Power cycle: TPM2_Shutdown(CLEAR) (when ``orderly``), _TPM_Init,
        TPM2_Startup(CLEAR). resetCount +1, restartCount 0, PCRs to their
        initial values. An unclean reset (``orderly=False``) sets safe=0 and the
        clock goes back to its last NV checkpoint, as on swtpm."""
        if startup_locality not in (0, 3):
            raise ValueError("startup locality must be 0 or 3")
        if orderly:
            self._s["clock_nv"] = self._tick()
            self._s["safe"] = True
        else:
            self._s["clock"] = int(self._s["clock_nv"])
            self._s["safe"] = False
        self._s["reset"] = int(self._s["reset"]) + 1
        self._s["restart"] = 0
        for entry in self._s["nv"].values():
            if entry.get("kind") == "extend":  # TPMA_NV_CLEAR_STCLEAR
                entry["value"] = None
        self._s["pcrs"] = {
            b: [pcr_reset_value(b, i, locality=startup_locality) for i in range(PCR_COUNT)]
            for b in BANKS
        }
        self._anchor()
        self._save()

    def resume(self) -> None:
        """TPM2_Shutdown(STATE) then TPM2_Startup(STATE): restartCount +1,
        PCRs and clock preserved, safe=1."""
        self._s["clock_nv"] = self._tick()
        self._s["restart"] = int(self._s["restart"]) + 1
        self._s["safe"] = True
        self._anchor()
        self._save()

    # -- info -----------------------------------------------------------------------
    def info(self) -> BackendInfo:
        return BackendInfo(
            kind="software",
            manufacturer="TESW (trustedge software TPM)",
            firmware_version=SOFTWARE_FIRMWARE_VERSION,
            banks=BANKS,
            ek_certificate_present=True,
            details={
                "state_dir": str(self.state_dir),
                "deterministic": "yes" if self._drbg.deterministic else "no",
                "reset_count": str(self._s["reset"]),
                "restart_count": str(self._s["restart"]),
            },
        )

    # -- endorsement ------------------------------------------------------------------
    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, Any]:
        from cryptography import x509

        if "ca" not in self._s:
            key = generate_ecc(ec.SECP256R1(), self._drbg)
            cert = manufacturer_ca(key, self._drbg)
            self._s["ca"] = {
                "key": _der(key),
                "cert": cert.public_bytes(serialization.Encoding.DER),
            }
        ca = self._s["ca"]
        key = cast(ec.EllipticCurvePrivateKey, _load(ca["key"]))
        return key, x509.load_der_x509_certificate(ca["cert"])

    def _ek(self, kind: EKKind) -> tuple[Public, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
        template = ek_template(kind)
        eks = self._s["eks"]
        if kind not in eks:
            priv: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
            if kind == "rsa2048":
                priv = generate_rsa(2048, self._drbg)
            elif kind == "ecc-p256":
                priv = generate_ecc(ec.SECP256R1(), self._drbg)
            else:
                priv = generate_ecc(ec.SECP384R1(), self._drbg)
            ca_key, ca_cert = self._ca()
            cert = ek_certificate(priv.public_key(), ca_key, ca_cert, self._drbg)
            eks[kind] = {"key": _der(priv),
                         "cert": cert.public_bytes(serialization.Encoding.DER)}  # fmt: skip
            self._save()
        priv = cast(rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, _load(eks[kind]["key"]))
        return with_key(template, priv.public_key()), priv

    def ek_public(self, kind: EKKind = "rsa2048") -> bytes:
        """The EK's TPM2B_PUBLIC (TCG template L-1, L-2 or H-3 with its key)."""
        return self._ek(kind)[0].marshal_tpm2b()

    def ek_certificate(self, kind: EKKind = "rsa2048") -> bytes | None:
        """The EK certificate (DER), issued by this software TPM's own CA."""
        self._ek(kind)
        return bytes(self._s["eks"][kind]["cert"])

    def ek_ca_certificate(self) -> bytes:
        """The software "manufacturer" CA certificate (DER) that issues EK certificates."""
        self._ca()
        self._save()
        return bytes(self._s["ca"]["cert"])

    # -- attestation keys ------------------------------------------------------------------
    def create_ak(
        self, algorithm: AKAlgorithm = "ecc-p256-ecdsa", *, ek_kind: EKKind = "rsa2048"
    ) -> AKHandle:
        """A restricted signing key (tpm2_createak attributes) under the EK."""
        template = ak_template(algorithm)
        self._ek(ek_kind)
        priv: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            generate_ecc(ec.SECP256R1(), self._drbg)
            if algorithm.startswith("ecc")
            else generate_rsa(2048, self._drbg)
        )
        key_id = self._drbg(16)
        self._s["aks"][key_id.hex()] = {"alg": algorithm, "ek": ek_kind, "key": _der(priv)}
        self._save()
        return self._ak_handle(key_id, with_key(template, priv.public_key()), algorithm, ek_kind)

    def _ak_handle(
        self, key_id: bytes, public: Public, algorithm: AKAlgorithm, ek_kind: EKKind
    ) -> AKHandle:
        return AKHandle(public.marshal_tpm2b(), public.name(), key_id, algorithm, ek_kind)

    def _ak(self, blob: bytes) -> tuple[AKHandle, Public, Any]:
        entry = self._s["aks"].get(bytes(blob).hex())
        if entry is None:
            raise BackendError("no such attestation key in this software TPM", code=TPM_RC_HANDLE)
        priv = _load(entry["key"])
        algorithm = cast(AKAlgorithm, entry["alg"])
        public = with_key(ak_template(algorithm), priv.public_key())
        return self._ak_handle(blob, public, algorithm, entry["ek"]), public, priv

    def load_ak(self, blob: bytes) -> AKHandle:
        return self._ak(blob)[0]

    def qualified_name(self, ak: AKHandle) -> bytes:
        """The AK's qualified name (what quotes carry as qualifiedSigner)."""
        _, public, _ = self._ak(ak.blob)
        ek, _ = self._ek(ak.ek_kind)
        hierarchy = int(TPMHandle.RH_ENDORSEMENT).to_bytes(4, "big")
        qn_ek = qualified_name(hierarchy, ek.name(), ek.name_alg)
        return qualified_name(qn_ek, public.name(), public.name_alg)

    def activate_credential(
        self, ak: AKHandle, credential_blob: bytes, encrypted_secret: bytes
    ) -> bytes:
        """ActivateCredential with the AK's EK; a blob made for another EK or
        another object name fails with ``BackendError(code=TPM_RC_INTEGRITY)``."""
        _, public, _ = self._ak(ak.blob)
        ek, ek_priv = self._ek(ak.ek_kind)
        try:
            return recover_credential(ek, ek_priv, credential_blob, encrypted_secret, public.name())
        except (VerificationError, MalformedInputError) as exc:
            raise BackendError(f"ActivateCredential failed: {exc}", code=TPM_RC_INTEGRITY) from exc

    # -- PCRs ----------------------------------------------------------------------------------
    def _bank(self, bank: str) -> list[bytes]:
        pcrs: dict[str, list[bytes]] = self._s["pcrs"]
        if bank not in pcrs:
            raise BackendError(f"PCR bank {bank!r} is not allocated", code=TPM_RC_VALUE)
        return pcrs[bank]

    @staticmethod
    def _index(index: int) -> None:
        if not 0 <= index < PCR_COUNT:
            raise BackendError(f"PCR {index} does not exist", code=TPM_RC_VALUE)

    def pcr_read(self, selection: PCRSelection) -> PCRValues:
        out: PCRValues = {}
        for bank, indices in selection.items():
            values = self._bank(bank)
            for i in indices:
                self._index(i)
                out.setdefault(bank, {})[i] = values[i]
        return out

    def pcr_extend(
        self, index: int, digests: Mapping[str, bytes], *, locality: int | None = None
    ) -> None:
        """PCR[index] = H(PCR[index] || digest) in each given bank."""
        loc = self.locality if locality is None else locality
        self._index(index)
        if not pcr_extendable(index, loc):
            raise BackendError(f"PCR {index} cannot be extended from locality {loc}",
                               code=TPM_RC_LOCALITY)  # fmt: skip
        for bank, digest in digests.items():
            h = hash_alg_by_name(bank)
            if len(digest) != h.digest_size:
                raise BackendError(f"{bank} digest must be {h.digest_size} bytes", code=TPM_RC_SIZE)
            values = self._bank(bank)
            values[index] = h.digest(values[index] + digest)
        self._save()

    def pcr_reset(self, index: int, *, locality: int | None = None) -> None:
        """Reset a resettable PCR (16, 23; 17-22 from their localities) to zero."""
        loc = self.locality if locality is None else locality
        self._index(index)
        if not pcr_resettable(index, loc):
            raise BackendError(f"PCR {index} cannot be reset from locality {loc}",
                               code=TPM_RC_LOCALITY)  # fmt: skip
        for bank in BANKS:
            self._bank(bank)[index] = bytes(hash_alg_by_name(bank).digest_size)
        self._save()

    # -- quotes ------------------------------------------------------------------------------------
    def quote(self, ak: AKHandle, nonce: bytes, selection: PCRSelection) -> QuoteResult:
        """TPM2_Quote: the TPMS_ATTEST a TPM builds, signed with the AK's scheme."""
        if len(nonce) > 64:
            raise BackendError("qualifyingData longer than 64 bytes", code=TPM_RC_SIZE)
        _, public, priv = self._ak(ak.blob)
        sel = PCRSelectionList.from_mapping(selection)
        values = self.pcr_read(selection)
        scheme = public.scheme()
        ordered = [values[b][i] for b, i in sel.pcr_order()]
        attest = Attest(
            magic=TPM_GENERATED_VALUE,
            type=int(TPMST.ATTEST_QUOTE),
            qualified_signer=self.qualified_name(ak),
            extra_data=bytes(nonce),
            clock_info=self.clock_info(),
            firmware_version=SOFTWARE_FIRMWARE_VERSION,
            attested=QuoteInfo(sel, pcr_composite_digest(scheme.hash_alg, ordered)),
        )
        message = attest.marshal()
        signature = self._sign(priv, scheme.scheme, scheme.hash_alg, message)
        return QuoteResult(message, signature.marshal(), values)

    def _sign(self, priv: Any, scheme: int, hash_id: int, message: bytes) -> Signature:
        algo = hash_for(hash_id)
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            der = priv.sign(message, ec.ECDSA(algo, deterministic_signing=self._drbg.deterministic))
            r, s = decode_dss_signature(der)
            size = (priv.curve.key_size + 7) // 8
            return Signature(scheme, hash_id, r=r.to_bytes(size, "big"), s=s.to_bytes(size, "big"))
        assert isinstance(priv, rsa.RSAPrivateKey)
        if scheme == TPMAlg.RSAPSS:
            # The TPM uses a salt as long as the digest.
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(algo), salt_length=hash_alg_by_id(hash_id).digest_size
            )
        else:
            pad = padding.PKCS1v15()
        return Signature(scheme, hash_id, rsa=priv.sign(message, pad, algo))

    # -- NV counters -----------------------------------------------------------------------------
    def _nv(self, index: int) -> dict[str, Any]:
        entry = self._s["nv"].get(index)
        if entry is None:
            raise BackendError(f"NV index 0x{index:08x} is not defined", code=TPM_RC_HANDLE)
        return cast(dict[str, Any], entry)

    def nv_counter_define(self, index: int) -> None:
        """Define an 8-byte NV counter; it reads as uninitialised until incremented."""
        if not _NV_FIRST <= index <= _NV_LAST:
            raise BackendError(f"0x{index:08x} is not an NV index", code=TPM_RC_NV_RANGE)
        if index in self._s["nv"]:
            raise BackendError(f"NV index 0x{index:08x} already defined", code=TPM_RC_NV_DEFINED)
        self._s["nv"][index] = {"value": None}
        self._save()

    def _counter(self, index: int) -> dict[str, Any]:
        entry = self._nv(index)
        if entry.get("kind", "counter") != "counter":
            raise BackendError(f"NV index 0x{index:08x} is not a counter", code=TPM_RC_ATTRIBUTES)
        return entry

    def nv_counter_increment(self, index: int) -> int:
        """Increment; the first increment starts above every counter value this TPM
        has ever had, so undefine/redefine never rolls a counter back."""
        entry = self._counter(index)
        value = int(self._s["nv_max"]) + 1 if entry["value"] is None else int(entry["value"]) + 1
        if value >= 1 << 64:
            raise BackendError("NV counter overflow", code=TPM_RC_VALUE)
        entry["value"] = value
        self._s["nv_max"] = max(int(self._s["nv_max"]), value)
        self._save()
        return value

    def nv_counter_read(self, index: int) -> int:
        value = self._counter(index)["value"]
        if value is None:
            raise BackendError(f"NV counter 0x{index:08x} was never incremented",
                               code=TPM_RC_NV_UNINITIALIZED)  # fmt: skip
        return int(value)

    def nv_counter_undefine(self, index: int) -> None:
        self._counter(index)
        self.nv_undefine(index)

    # -- NV extend indices ------------------------------------------------------------------------
    def _nv_public(self, index: int) -> NVPublic:
        entry = self._nv(index)
        if entry.get("kind", "counter") == "counter":
            public = NVPublic(index, int(TPMAlg.SHA256), NV_COUNTER_ATTRIBUTES, b"", 8)
        else:
            public = NVPublic.unmarshal(bytes(entry["public"]))
        return public.with_written(entry["value"] is not None)

    def _extend_entry(self, index: int) -> dict[str, Any]:
        entry = self._nv(index)
        if entry.get("kind") != "extend":
            raise BackendError(
                f"NV index 0x{index:08x} is not an extend index", code=TPM_RC_ATTRIBUTES
            )
        return entry

    def nv_extend_define(self, index: int) -> bytes:
        """Define a SHA-256 extend index (``EXTEND_ATTRIBUTES``); idempotent."""
        if not _NV_FIRST <= index <= _NV_LAST:
            raise BackendError(f"0x{index:08x} is not an NV index", code=TPM_RC_NV_RANGE)
        public = NVPublic.extend_index(index)
        entry = self._s["nv"].get(index)
        if entry is not None:
            if entry.get("kind") != "extend" or bytes(entry["public"]) != public.marshal():
                raise BackendError(
                    f"NV index 0x{index:08x} already defined differently", code=TPM_RC_NV_DEFINED
                )
            return public.marshal()
        self._s["nv"][index] = {"kind": "extend", "public": public.marshal(), "value": None}
        self._save()
        return public.marshal()

    def nv_extend(self, index: int, digest: bytes) -> None:
        """value = SHA-256(value || digest), from 32 zero bytes when unwritten."""
        entry = self._extend_entry(index)
        if len(digest) > 1024:
            raise BackendError("NV_Extend data larger than MAX_NV_BUFFER", code=TPM_RC_SIZE)
        old = bytes(32) if entry["value"] is None else bytes(entry["value"])
        entry["value"] = hashlib.sha256(old + bytes(digest)).digest()
        self._save()

    def nv_extend_read(self, index: int) -> bytes | None:
        value = self._extend_entry(index)["value"]
        return None if value is None else bytes(value)

    def nv_undefine(self, index: int) -> None:
        self._nv(index)
        del self._s["nv"][index]
        self._save()

    def _nv_data(self, index: int) -> bytes:
        entry = self._nv(index)
        if entry["value"] is None:
            raise BackendError(
                f"NV index 0x{index:08x} was never written", code=TPM_RC_NV_UNINITIALIZED
            )
        if entry.get("kind", "counter") == "counter":
            return int(entry["value"]).to_bytes(8, "big")
        return bytes(entry["value"])

    def nv_certify(
        self, ak: AKHandle, index: int, nonce: bytes, *, size: int = 8, offset: int = 0
    ) -> tuple[bytes, bytes]:
        """TPM2_NV_Certify: the TPMS_ATTEST (ATTEST_NV) a TPM builds, signed with
        the AK's scheme; the index must have been written."""
        if len(nonce) > 64:
            raise BackendError("qualifyingData longer than 64 bytes", code=TPM_RC_SIZE)
        _, public, priv = self._ak(ak.blob)
        data = self._nv_data(index)
        if size < 0 or offset < 0 or offset + size > len(data):
            raise BackendError("NV_Certify range outside the index", code=TPM_RC_NV_RANGE)
        attest = Attest(
            magic=TPM_GENERATED_VALUE,
            type=int(TPMST.ATTEST_NV),
            qualified_signer=self.qualified_name(ak),
            extra_data=bytes(nonce),
            clock_info=self.clock_info(),
            firmware_version=SOFTWARE_FIRMWARE_VERSION,
            attested=NVCertifyInfo(
                self._nv_public(index).name(), offset, data[offset : offset + size]
            ),
        )
        message = attest.marshal()
        scheme = public.scheme()
        return message, self._sign(priv, scheme.scheme, scheme.hash_alg, message).marshal()

    # -- sealing -----------------------------------------------------------------------------------
    def _seal_key(self) -> bytes:
        return kdfa(int(TPMAlg.SHA256), bytes(self._s["primary"]), b"SEAL", b"", b"", 256)

    def _policy_digest(self, selection: Mapping[str, list[int]]) -> bytes:
        values = self.pcr_read(selection)
        sel = PCRSelectionList.from_mapping(selection)
        return pcr_composite_digest(int(TPMAlg.SHA256), [values[b][i] for b, i in sel.pcr_order()])

    def seal(
        self, secret: bytes, *, pcrs: PCRSelection | None = None, auth: bytes | None = None
    ) -> bytes:
        """Seal up to 128 bytes to the current values of ``pcrs`` and/or ``auth``.
        The blob is AES-256-GCM under a key derived from this TPM's primary seed."""
        if len(secret) > _MAX_SEALED:
            raise ValueError(f"at most {_MAX_SEALED} bytes can be sealed")
        selection = {b: sorted(set(v)) for b, v in (pcrs or {}).items()}
        header = {
            "sel": selection,
            "policy": self._policy_digest(selection) if selection else b"",
            "auth": hashlib.sha256(auth).digest() if auth is not None else b"",
        }
        nonce = self._drbg(12)
        ct = AESGCM(self._seal_key()).encrypt(nonce, bytes(secret), _cbor.encode(header))
        self._save()
        return _SEAL_MAGIC + _cbor.encode({**header, "nonce": nonce, "ct": ct})

    def unseal(self, blob: bytes, *, auth: bytes | None = None) -> bytes:
        """Unseal; raises :class:`~trustedge.errors.PolicyError` when a sealed PCR
        changed, :class:`~trustedge.errors.VerificationError` for a wrong auth or a
        blob of another TPM, :class:`~trustedge.errors.MalformedInputError` for junk."""
        if not blob.startswith(_SEAL_MAGIC):
            raise MalformedInputError("not a software TPM sealed blob", offset=0)
        limits = _cbor.DecodeLimits(max_size=4096, max_depth=4, max_items=200)
        doc = _cbor.decode(blob[len(_SEAL_MAGIC) :], canonical=True, limits=limits)
        if not isinstance(doc, dict) or set(doc) != {"sel", "policy", "auth", "nonce", "ct"}:
            raise MalformedInputError("sealed blob has the wrong fields")
        header = {k: doc[k] for k in ("sel", "policy", "auth")}
        try:
            secret = AESGCM(self._seal_key()).decrypt(doc["nonce"], doc["ct"], _cbor.encode(header))
        except (InvalidTag, TypeError, ValueError):
            raise VerificationError("sealed blob is not from this TPM or was modified") from None
        if header["auth"]:
            given = hashlib.sha256(auth).digest() if auth is not None else b""
            if not hmac.compare_digest(given, header["auth"]):
                raise VerificationError("wrong authorization value for the sealed object")
        if header["sel"]:
            current = self._policy_digest(header["sel"])
            if not hmac.compare_digest(current, header["policy"]):
                raise PolicyError("PCR values differ from those the secret was sealed to",
                                  violations=["pcr-policy"])  # fmt: skip
        return bytes(secret)

    # -- signed PCR policies (TPM2_PolicyAuthorize) -----------------------------------------------
    def nv_name(self, index: int) -> bytes:
        """The index's name (nameAlg || H(TPMS_NV_PUBLIC)), WRITTEN bit as it is now."""
        return self._nv_public(index).name()

    def seal_authorized(self, secret: bytes, *, authority: bytes, policy_ref: bytes = b"") -> bytes:
        """Seal to ``PolicyAuthorize(name(authority), policy_ref)`` (the digest a TPM
        object would carry as authPolicy); AES-256-GCM under the primary seed."""
        if len(secret) > _MAX_SEALED:
            raise ValueError(f"at most {_MAX_SEALED} bytes can be sealed")
        if len(policy_ref) > 64:
            raise ValueError("policyRef has at most 64 bytes")
        name = Public.unmarshal_tpm2b(authority).name()
        auth_policy = policy_authorize(name, policy_ref)
        nonce = self._drbg(12)
        ct = AESGCM(self._seal_key()).encrypt(nonce, bytes(secret), auth_policy)
        self._save()
        return _SEAL_AUTHORIZED + _cbor.encode(
            {"authpolicy": auth_policy, "nonce": nonce, "ct": ct}
        )

    def unseal_authorized(self, blob: bytes, policy: bytes, *, authority: bytes) -> bytes:
        """What a TPM does, step by step: VerifySignature(authority, aHash) -> ticket;
        PolicyPCR over the *current* values; PolicyNV(index <= version) on the
        index's current contents and name; PolicyAuthorize (the session digest
        must equal the approved one, then becomes PolicyAuthorize(keyName, ref));
        Unseal (that digest must be the object's authPolicy)."""
        if not blob.startswith(_SEAL_AUTHORIZED):
            raise MalformedInputError("not a software TPM authorized-sealed blob", offset=0)
        limits = _cbor.DecodeLimits(max_size=1024, max_depth=2, max_items=16)
        doc = _cbor.decode(blob[len(_SEAL_AUTHORIZED) :], canonical=True, limits=limits)
        if not isinstance(doc, dict) or set(doc) != {"authpolicy", "nonce", "ct"}:
            raise MalformedInputError("authorized-sealed blob has the wrong fields")
        if not all(isinstance(v, bytes) for v in doc.values()):
            raise MalformedInputError("authorized-sealed blob fields are byte strings")
        signed = SignedPolicy.decode(policy)
        key = Public.unmarshal_tpm2b(authority)
        verify_policy_signature(signed, key)  # TPM2_VerifySignature
        approved = signed.policy
        sel = PCRSelectionList.from_mapping(dict(approved.selection))
        values = self.pcr_read(sel.to_mapping())
        current = pcr_composite_digest(
            int(TPMAlg.SHA256), [values[b][i] for b, i in sel.pcr_order()]
        )
        session = policy_pcr(bytes(32), approved.selection, current)  # TPM2_PolicyPCR
        if approved.nv_name:  # TPM2_PolicyNV
            try:
                contents = self._nv_data(approved.nv_index)
                name = self._nv_public(approved.nv_index).name()
            except BackendError as exc:
                raise PolicyError(f"policy counter unusable: {exc}",
                                  violations=["policy-nv"]) from exc  # fmt: skip
            if int.from_bytes(contents[:8], "big") > approved.version:
                raise PolicyError(
                    f"policy version {approved.version} was revoked (counter is past it)",
                    violations=["policy-nv"],
                )
            session = policy_nv(
                session, name, version_operand(approved.version), 0, TPM_EO_UNSIGNED_LE
            )
        if not hmac.compare_digest(session, approved.digest()):  # TPM2_PolicyAuthorize
            raise PolicyError("PCR values differ from those the signed policy approves",
                              violations=["pcr-policy"])  # fmt: skip
        session = policy_authorize(key.name(), signed.policy_ref)
        try:
            secret = AESGCM(self._seal_key()).decrypt(doc["nonce"], doc["ct"], doc["authpolicy"])
        except (InvalidTag, ValueError):
            raise VerificationError("sealed blob is not from this TPM or was modified") from None
        if not hmac.compare_digest(session, doc["authpolicy"]):  # TPM2_Unseal
            raise PolicyError("the policy is signed by another authority",
                              violations=["policy-authority"])  # fmt: skip
        return bytes(secret)


def _der(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load(der: bytes) -> Any:
    try:
        return serialization.load_der_private_key(der, None)
    except (ValueError, TypeError) as exc:
        raise MalformedInputError(f"corrupt key in the software TPM state: {exc}") from exc
