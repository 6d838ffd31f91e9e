"""TPM 2.0 structures in pure Python: marshal/unmarshal, names, KDFs, MakeCredential.

.. warning:: hazmat. These are raw building blocks. Parsing a quote here does
   not verify it: use :func:`trustedge.attestation.verify_quote`.

No libtss2 is needed. Every parser is strict (bounded sizes, no trailing
bytes) and raises only :class:`~trustedge.errors.MalformedInputError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export

if TYPE_CHECKING:
    from trustedge.hazmat.tpm2.constants import (
        TPM_GENERATED_VALUE,
        TPMST,
        HashAlg,
        TPMAlg,
        TPMAObject,
        TPMECCCurve,
        TPMHandle,
        hash_alg_by_id,
        hash_alg_by_name,
        hash_for,
    )
    from trustedge.hazmat.tpm2.credential import Credential, make_credential, recover_credential
    from trustedge.hazmat.tpm2.files import (
        load_public,
        pcr_values_from_json,
        read_pcr_file,
        write_pcr_file,
    )
    from trustedge.hazmat.tpm2.kdf import kdfa, kdfe, pcr_composite_digest
    from trustedge.hazmat.tpm2.public import (
        AK_ATTRIBUTES,
        EK_TEMPLATES,
        ECCParms,
        ECCPoint,
        KeyedHashParms,
        Public,
        PublicKey,
        RSAParms,
        Scheme,
        SymCipherParms,
        SymDef,
        ak_template,
        ek_template,
        public_from_key,
        qualified_name,
        with_key,
    )
    from trustedge.hazmat.tpm2.structures import (
        Attest,
        AttestInfo,
        CertifyInfo,
        ClockInfo,
        CommandAuditInfo,
        CreationInfo,
        NVCertifyInfo,
        NVDigestCertifyInfo,
        PCRSelection,
        PCRSelectionList,
        QuoteFields,
        QuoteInfo,
        SessionAuditInfo,
        Signature,
        TimeAttestInfo,
        marshal_digest_list,
        pcr_indices,
        read_quote_fields,
        unmarshal_digest_list,
    )

__all__ = [
    "AK_ATTRIBUTES",
    "EK_TEMPLATES",
    "TPMST",
    "TPM_GENERATED_VALUE",
    "Attest",
    "AttestInfo",
    "CertifyInfo",
    "ClockInfo",
    "CommandAuditInfo",
    "CreationInfo",
    "Credential",
    "ECCParms",
    "ECCPoint",
    "HashAlg",
    "KeyedHashParms",
    "NVCertifyInfo",
    "NVDigestCertifyInfo",
    "PCRSelection",
    "PCRSelectionList",
    "Public",
    "PublicKey",
    "QuoteFields",
    "QuoteInfo",
    "RSAParms",
    "Scheme",
    "SessionAuditInfo",
    "Signature",
    "SymCipherParms",
    "SymDef",
    "TPMAObject",
    "TPMAlg",
    "TPMECCCurve",
    "TPMHandle",
    "TimeAttestInfo",
    "ak_template",
    "ek_template",
    "hash_alg_by_id",
    "hash_alg_by_name",
    "hash_for",
    "kdfa",
    "kdfe",
    "load_public",
    "make_credential",
    "marshal_digest_list",
    "pcr_composite_digest",
    "pcr_indices",
    "public_from_key",
    "qualified_name",
    "pcr_values_from_json",
    "read_pcr_file",
    "read_quote_fields",
    "recover_credential",
    "unmarshal_digest_list",
    "with_key",
    "write_pcr_file",
]

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "TPM_GENERATED_VALUE": "trustedge.hazmat.tpm2.constants",
    "TPMST": "trustedge.hazmat.tpm2.constants",
    "HashAlg": "trustedge.hazmat.tpm2.constants",
    "TPMAlg": "trustedge.hazmat.tpm2.constants",
    "TPMAObject": "trustedge.hazmat.tpm2.constants",
    "TPMECCCurve": "trustedge.hazmat.tpm2.constants",
    "TPMHandle": "trustedge.hazmat.tpm2.constants",
    "hash_alg_by_id": "trustedge.hazmat.tpm2.constants",
    "hash_alg_by_name": "trustedge.hazmat.tpm2.constants",
    "hash_for": "trustedge.hazmat.tpm2.constants",
    "Credential": "trustedge.hazmat.tpm2.credential",
    "make_credential": "trustedge.hazmat.tpm2.credential",
    "recover_credential": "trustedge.hazmat.tpm2.credential",
    "load_public": "trustedge.hazmat.tpm2.files",
    "pcr_values_from_json": "trustedge.hazmat.tpm2.files",
    "read_pcr_file": "trustedge.hazmat.tpm2.files",
    "write_pcr_file": "trustedge.hazmat.tpm2.files",
    "kdfa": "trustedge.hazmat.tpm2.kdf",
    "kdfe": "trustedge.hazmat.tpm2.kdf",
    "pcr_composite_digest": "trustedge.hazmat.tpm2.kdf",
    "AK_ATTRIBUTES": "trustedge.hazmat.tpm2.public",
    "EK_TEMPLATES": "trustedge.hazmat.tpm2.public",
    "ECCParms": "trustedge.hazmat.tpm2.public",
    "ECCPoint": "trustedge.hazmat.tpm2.public",
    "KeyedHashParms": "trustedge.hazmat.tpm2.public",
    "Public": "trustedge.hazmat.tpm2.public",
    "PublicKey": "trustedge.hazmat.tpm2.public",
    "RSAParms": "trustedge.hazmat.tpm2.public",
    "Scheme": "trustedge.hazmat.tpm2.public",
    "SymCipherParms": "trustedge.hazmat.tpm2.public",
    "SymDef": "trustedge.hazmat.tpm2.public",
    "ak_template": "trustedge.hazmat.tpm2.public",
    "ek_template": "trustedge.hazmat.tpm2.public",
    "public_from_key": "trustedge.hazmat.tpm2.public",
    "qualified_name": "trustedge.hazmat.tpm2.public",
    "with_key": "trustedge.hazmat.tpm2.public",
    "Attest": "trustedge.hazmat.tpm2.structures",
    "AttestInfo": "trustedge.hazmat.tpm2.structures",
    "CertifyInfo": "trustedge.hazmat.tpm2.structures",
    "ClockInfo": "trustedge.hazmat.tpm2.structures",
    "CommandAuditInfo": "trustedge.hazmat.tpm2.structures",
    "CreationInfo": "trustedge.hazmat.tpm2.structures",
    "NVCertifyInfo": "trustedge.hazmat.tpm2.structures",
    "NVDigestCertifyInfo": "trustedge.hazmat.tpm2.structures",
    "PCRSelection": "trustedge.hazmat.tpm2.structures",
    "PCRSelectionList": "trustedge.hazmat.tpm2.structures",
    "QuoteFields": "trustedge.hazmat.tpm2.structures",
    "QuoteInfo": "trustedge.hazmat.tpm2.structures",
    "SessionAuditInfo": "trustedge.hazmat.tpm2.structures",
    "Signature": "trustedge.hazmat.tpm2.structures",
    "TimeAttestInfo": "trustedge.hazmat.tpm2.structures",
    "marshal_digest_list": "trustedge.hazmat.tpm2.structures",
    "pcr_indices": "trustedge.hazmat.tpm2.structures",
    "read_quote_fields": "trustedge.hazmat.tpm2.structures",
    "unmarshal_digest_list": "trustedge.hazmat.tpm2.structures",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
