"""TPM 2.0 structures in pure Python: marshal/unmarshal, names, KDFs, MakeCredential.

.. warning:: hazmat. These are raw building blocks. Parsing a quote here does
   not verify it: use :func:`trustedge.attestation.verify_quote`.

No libtss2 is needed. Every parser is strict (bounded sizes, no trailing
bytes) and raises only :class:`~trustedge.errors.MalformedInputError`.
"""

from __future__ import annotations

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
    QuoteInfo,
    SessionAuditInfo,
    Signature,
    TimeAttestInfo,
    marshal_digest_list,
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
    "public_from_key",
    "qualified_name",
    "pcr_values_from_json",
    "read_pcr_file",
    "recover_credential",
    "unmarshal_digest_list",
    "with_key",
    "write_pcr_file",
]
