"""trustedge.hazmat: the raw TPM building blocks the safe recipes are made of.

.. warning:: **hazmat.** Nothing here verifies anything. Parsing a ``TPMS_ATTEST`` does not
   check its signature, its nonce or its PCR digest; extending a PCR or computing a policy
   digest here has no notion of what should be trusted. Use the recipes instead:
   :func:`trustedge.attestation.verify_evidence` / :class:`trustedge.attestation.Verifier`
   for quotes and evidence, :class:`trustedge.ota.Updater` for updates,
   :func:`trustedge.envelope.seal` / :func:`trustedge.envelope.open` for envelopes. Reach for
   hazmat only to build a new recipe, and then test it against a real TPM (swtpm).

What it holds (import the submodules; this package itself exports nothing):

* :mod:`trustedge.hazmat.tpm2` -- TPM 2.0 structures in pure Python: strict, bounded
  marshal/unmarshal of ``TPM2B_PUBLIC``, ``TPMS_ATTEST``, ``TPMT_SIGNATURE``, PCR selections
  and NV publics; object names, KDFa/KDFe, ``MakeCredential``, policy digests; the one
  hash-bank table (:data:`trustedge.hazmat.tpm2.constants.HASH_ALGS`) and the one PCR reset
  rule (:func:`trustedge.hazmat.tpm2.pcr.pcr_reset_value`).
* :mod:`trustedge.hazmat.tpmbackend` -- the :class:`~trustedge.hazmat.tpmbackend.TPMBackend`
  protocol that the software TPM and the tpm2-pytss backend implement (bytes, ints and small
  dataclasses only, so envelopes and OTA rollback state can use a TPM without the attestation
  layer).

Every parser raises only :class:`~trustedge.errors.MalformedInputError` on bad bytes.
"""

__all__: list[str] = []
