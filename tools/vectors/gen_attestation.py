#!/usr/bin/env python3
"""Generate vectors/attestation/*.json deterministically.

* ``quotes.json``: quotes from a seeded SoftwareTPM (ECDSA P-256 and RSASSA-2048
  AKs) -- valid, and each invalid variant (wrong nonce, wrong PCR digest, wrong
  selection, bad signature, wrong magic, wrong type, trailing bytes, clock
  regression), the forged ones re-signed with the same AK so that only the
  named check fails;
* ``credentials.json``: MakeCredential blobs for fixed EKs (RSA-2048, P-256),
  with the EK private keys so another implementation can activate them;
* ``attest_parse.json``: TPMS_ATTEST parse cases for every attestation type.

``--check`` regenerates in memory and exits 1 when a committed file differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from trustedge.attestation.backends._softkeys import Drbg
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.hazmat.tpm2 import (
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    CertifyInfo,
    ClockInfo,
    CommandAuditInfo,
    CreationInfo,
    NVCertifyInfo,
    NVDigestCertifyInfo,
    PCRSelectionList,
    Public,
    QuoteInfo,
    SessionAuditInfo,
    TimeAttestInfo,
    TPMAlg,
    make_credential,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "vectors" / "attestation"
GENERATOR = "tools/vectors/gen_attestation.py"
SEED = b"trustedge attestation vectors v1"
NONCE = bytes.fromhex("7e57ab1e" * 8)
SELECTION = {"sha256": [0, 1, 2, 3, 7, 16]}


def _doc(algorithm: str, notes: dict[str, str], groups: list[dict[str, Any]]) -> dict[str, Any]:
    tc = 0
    for g in groups:
        for t in g["tests"]:
            tc += 1
            t["tcId"] = tc
            t.setdefault("flags", [])
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": algorithm,
        "source": "trustedge SoftwareTPM in deterministic (seeded) mode",
        "generator": GENERATOR,
        "notes": notes,
        "numberOfTests": tc,
        "testGroups": groups,
    }


def _hexpcrs(values: dict[str, dict[int, bytes]]) -> dict[str, dict[str, str]]:
    return {b: {str(i): v.hex() for i, v in sorted(vals.items())} for b, vals in values.items()}


def _quotes(tmp: Path) -> dict[str, Any]:
    tpm = SoftwareTPM(tmp / "quotes", seed=SEED)
    tpm.reboot()  # resetCount 1, so that a "previous boot" state exists
    tpm.pcr_extend(16, {"sha256": bytes(range(32))})
    groups = []
    for algorithm in ("ecc-p256-ecdsa", "rsa2048-rsassa"):
        ak = tpm.create_ak(algorithm, ek_kind="ecc-p256")  # type: ignore[arg-type]
        # The generator owns the AK: it re-signs forged variants with the same key.
        _, public, priv = tpm._ak(ak.blob)
        scheme = public.scheme()

        def resign(attest: Attest, *, priv: Any = priv, scheme: Any = scheme) -> tuple[str, str]:
            msg = attest.marshal()
            return msg.hex(), tpm._sign(priv, scheme.scheme, scheme.hash_alg, msg).marshal().hex()

        first = tpm.quote(ak, NONCE, SELECTION)
        q = tpm.quote(ak, NONCE, SELECTION)
        a = Attest.unmarshal(q.message)
        base = {"message": q.message.hex(), "signature": q.signature.hex(), "nonce": NONCE.hex(),
                "pcrs": _hexpcrs(q.pcrs), "selection": SELECTION}  # fmt: skip
        tests: list[dict[str, Any]] = [
            {**base, "comment": "valid quote", "result": "valid",
             "expectedClock": [a.clock_info.reset_count, a.clock_info.restart_count,
                               a.clock_info.clock]},
            {**base, "comment": "valid quote after the previous one", "result": "valid",
             "last": list(_state(Attest.unmarshal(first.message)))},
            {**base, "comment": "valid with the qualified signer checked", "result": "valid",
             "qualifiedSigner": tpm.qualified_name(ak).hex()},
            {**base, "comment": "wrong nonce", "nonce": NONCE[::-1].hex(), "result": "invalid",
             "error": "NonceError", "check": "QuoteNonceError"},
            {**base, "comment": "wrong PCR value (digest mismatch)", "result": "invalid",
             "pcrs": {"sha256": {**base["pcrs"]["sha256"], "16": "00" * 32}},
             "error": "VerificationError", "check": "PCRDigestError"},
            {**base, "comment": "selection differs from the one asked for", "result": "invalid",
             "selection": {"sha256": [0, 1, 2, 3, 7]}, "error": "VerificationError",
             "check": "PCRSelectionError"},
            {**base, "comment": "signature byte flipped", "result": "invalid",
             "signature": _flip(q.signature, len(q.signature) - 5), "error": "SignatureError",
             "check": "QuoteSignatureError"},
            {**base, "comment": "message byte flipped", "result": "invalid",
             "message": _flip(q.message, 40), "error": "SignatureError",
             "check": "QuoteSignatureError"},
            {**base, "comment": "qualified signer of another key", "result": "invalid",
             "qualifiedSigner": "000b" + "00" * 32, "error": "VerificationError",
             "check": "QualifiedSignerError"},
            {**base, "comment": "replayed quote: clock equal to the last accepted",
             "result": "invalid", "last": list(_state(a)), "error": "RollbackError",
             "check": "ClockRegressionError"},
            {**base, "comment": "clock regression against a later quote", "result": "invalid",
             "last": [a.clock_info.reset_count, a.clock_info.restart_count,
                      a.clock_info.clock + 1000], "error": "RollbackError",
             "check": "ClockRegressionError"},
            {**base, "comment": "reboot: resetCount rose, clock may drop", "result": "valid",
             "last": [a.clock_info.reset_count - 1 if a.clock_info.reset_count else 0, 0, 0]
             if a.clock_info.reset_count else None},
        ]  # fmt: skip
        tests = [t for t in tests if t.get("last", 0) is not None]
        for comment, changes, error, check in (
            ("signed, wrong magic", {"magic": TPM_GENERATED_VALUE ^ 1}, "VerificationError",
             "QuoteFormatError"),
            ("signed, certify type instead of quote",
             {"type": int(TPMST.ATTEST_CERTIFY), "attested": CertifyInfo(b"", b"")},
             "VerificationError", "QuoteFormatError"),
        ):  # fmt: skip
            msg, sig = resign(dataclasses.replace(a, **changes))  # type: ignore[arg-type]
            tests.append({**base, "message": msg, "signature": sig, "comment": comment,
                          "result": "invalid", "error": error, "check": check})  # fmt: skip
        msg = q.message + b"\x00"
        sig = tpm._sign(priv, scheme.scheme, scheme.hash_alg, msg).marshal().hex()
        tests.append({**base, "message": msg.hex(), "signature": sig, "result": "invalid",
                      "comment": "signed, trailing byte after TPMS_ATTEST",
                      "error": "MalformedInputError", "check": "MalformedInputError"})  # fmt: skip
        groups.append({"type": "QuoteVerify", "akAlgorithm": algorithm,
                       "akPublic": ak.public.hex(), "akName": ak.name.hex(), "tests": tests})  # fmt: skip
    notes = {"check": "the trustedge.attestation error class (a subclass of `error`)"}
    return _doc("TPM2_Quote verification (verify_quote)", notes, groups)


def _state(a: Attest) -> tuple[int, int, int]:
    c = a.clock_info
    return (c.reset_count, c.restart_count, c.clock)


def _flip(data: bytes, i: int) -> str:
    b = bytearray(data)
    b[i] ^= 0x01
    return bytes(b).hex()


def _credentials(tmp: Path) -> dict[str, Any]:
    tpm = SoftwareTPM(tmp / "creds", seed=SEED + b"/credentials")
    groups = []
    for kind in ("ecc-p256", "rsa2048"):
        ak = tpm.create_ak("ecc-p256-ecdsa", ek_kind=kind)  # type: ignore[arg-type]
        ek = Public.unmarshal_tpm2b(tpm.ek_public(kind))  # type: ignore[arg-type]
        _, ek_priv = tpm._ek(kind)  # type: ignore[arg-type]
        pem = ek_priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()  # fmt: skip
        rand = Drbg(SEED + kind.encode())
        secret = bytes(range(32))
        cred = make_credential(ek, secret, ak.name, randbytes=rand)
        wrong = ak.name[:-1] + bytes([ak.name[-1] ^ 1])
        tests = [
            {"comment": "activates with the AK name", "akName": ak.name.hex(),
             "credentialBlob": cred.credential_blob.hex(),
             "encryptedSecret": cred.encrypted_secret.hex(),
             "tpm2ToolsFile": cred.to_tpm2_tools().hex(), "secret": secret.hex(),
             "result": "valid"},
            {"comment": "another object name fails the integrity check", "akName": wrong.hex(),
             "credentialBlob": cred.credential_blob.hex(),
             "encryptedSecret": cred.encrypted_secret.hex(), "result": "invalid",
             "error": "VerificationError"},
        ]  # fmt: skip
        groups.append({"type": "ActivateCredential", "ekKind": kind, "ekPublic": ek.marshal_tpm2b().hex(),
                       "ekPrivatePem": pem, "tests": tests})  # fmt: skip
    return _doc("MakeCredential / ActivateCredential (TPM 2.0 Part 1 §24)",
                {"ekPrivatePem": "test key: never use outside tests"}, groups)  # fmt: skip


def _parse() -> dict[str, Any]:
    clock = ClockInfo(123456789, 7, 1, True)
    name = bytes.fromhex("000b") + bytes(range(32))
    sel = PCRSelectionList.from_mapping({"sha256": [0, 1, 2, 3, 7, 16]})
    infos = [
        QuoteInfo(sel, bytes(range(32))),
        CertifyInfo(name, name[::-1]),
        CreationInfo(name, b"\x01" * 32),
        NVCertifyInfo(name, 0, (42).to_bytes(8, "big")),
        NVDigestCertifyInfo(name, b"\x02" * 32),
        TimeAttestInfo(987654321, clock, 0x2019102300163636),
        SessionAuditInfo(False, b"\x03" * 32),
        CommandAuditInfo(5, int(TPMAlg.SHA256), b"\x04" * 32, b"\x05" * 32),
    ]
    types = [TPMST.ATTEST_QUOTE, TPMST.ATTEST_CERTIFY, TPMST.ATTEST_CREATION, TPMST.ATTEST_NV,
             TPMST.ATTEST_NV_DIGEST, TPMST.ATTEST_TIME, TPMST.ATTEST_SESSION_AUDIT,
             TPMST.ATTEST_COMMAND_AUDIT]  # fmt: skip
    tests: list[dict[str, Any]] = []
    quote_raw = b""
    for st, info in zip(types, infos, strict=True):
        a = Attest(TPM_GENERATED_VALUE, int(st), name, b"nonce", clock, 0x2019102300163636, info)
        raw = a.marshal()
        quote_raw = quote_raw or raw
        tests.append({"comment": f"{st.name}", "attest": raw.hex(), "result": "valid",
                      "type": int(st), "extraData": b"nonce".hex(),
                      "clock": [clock.clock, clock.reset_count, clock.restart_count, 1]})  # fmt: skip
    safe_at = 4 + 2 + 2 + len(name) + 2 + 5 + 16
    bad_safe = bytearray(quote_raw)
    bad_safe[safe_at] = 2
    for comment, raw, error in (
        ("trailing byte", quote_raw + b"\x00", "MalformedInputError"),
        ("truncated", quote_raw[:-1], "MalformedInputError"),
        ("empty", b"", "MalformedInputError"),
        ("unknown type 0x8099", quote_raw[:4] + b"\x80\x99" + quote_raw[6:], "MalformedInputError"),
        ("safe is 2", bytes(bad_safe), "MalformedInputError"),
        ("qualifiedSigner longer than TPMT_HA", quote_raw[:6] + b"\x00\x43" + quote_raw[8:],
         "LimitExceededError"),
        ("13 PCR banks claimed (more than present)", quote_raw[: safe_at + 9] + b"\x00\x00\x00\x0d"
         + quote_raw[safe_at + 13 :], "MalformedInputError"),
    ):  # fmt: skip
        tests.append({"comment": comment, "attest": raw.hex(), "result": "invalid", "error": error})
    return _doc("TPMS_ATTEST strict parsing (Attest.unmarshal)", {},
                [{"type": "AttestParse", "tests": tests}])  # fmt: skip


def generate() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        docs = {
            "quotes.json": _quotes(tmp),
            "credentials.json": _credentials(tmp),
            "attest_parse.json": _parse(),
        }
    return {name: json.dumps(doc, indent=2, sort_keys=False) + "\n" for name, doc in docs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = [n for n, text in files.items() if not (OUT / n).exists()
                 or (OUT / n).read_text(encoding="utf-8") != text]  # fmt: skip
        if stale:
            print(f"vectors/attestation out of date: {', '.join(stale)} "
                  f"(run {GENERATOR})", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
