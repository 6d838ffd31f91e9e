"""Real quotes from swtpm through tpm2-tools, verified by trustedge (and the reverse).

Every tpm2-tools call is followed by ``tpm2_flushcontext -t/-s``: swtpm has no
resource manager and only three transient object slots.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge.attestation import (
    ClockRegressionError,
    PCRDigestError,
    PCRSelectionError,
    QualifiedSignerError,
    QuoteNonceError,
    QuotePolicy,
    QuoteSignatureError,
    QuoteState,
    verify_quote,
)
from trustedge.errors import VerificationError
from trustedge.hazmat.tpm2 import (
    Attest,
    Public,
    TPMHandle,
    load_public,
    qualified_name,
    read_pcr_file,
)

pytestmark = pytest.mark.tpm

NONCE = bytes.fromhex("5ca1ab1e00112233445566778899aabbccddeeff0011223344556677889900aa")
SELECTION = "sha256:0,1,2,3,7,16"


def run(
    env: dict[str, str], cwd: Path, *args: str, check: bool = True, flush: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run one tpm2-tools command, then flush transient objects and sessions."""
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, check=False)
    for flag in ("-t", "-s") if flush else ():
        subprocess.run(["tpm2_flushcontext", flag], cwd=cwd, env=env, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc


@dataclass
class ToolsAK:
    """An AK made by tpm2_createak under an EK made by tpm2_createek."""

    dir: Path
    env: dict[str, str]
    ek_alg: str
    key_alg: str
    scheme: str

    @property
    def ctx(self) -> str:
        return str(self.dir / "ak.ctx")

    def public(self) -> Public:
        pub = load_public((self.dir / "ak.tpm2b").read_bytes())
        assert isinstance(pub, Public)
        return pub

    def quote(
        self, tag: str, nonce: bytes = NONCE, pcrs: str = SELECTION
    ) -> tuple[Path, Path, Path]:
        m, s, o = (self.dir / f"{tag}.{ext}" for ext in ("msg", "sig", "pcrs"))
        args = ["tpm2_quote", "-c", self.ctx, "-l", pcrs, "-q", nonce.hex(), "-m", str(m),
                "-s", str(s), "-o", str(o), "-g", "sha256"]  # fmt: skip
        if self.scheme == "rsapss":
            args += ["--scheme", "rsapss"]
        run(self.env, self.dir, *args)
        return m, s, o


def make_ak(swtpm: Swtpm, base: Path, ek_alg: str, key_alg: str, scheme: str) -> ToolsAK:
    d = base / f"{ek_alg}-{key_alg}-{scheme}"
    env = swtpm.env()
    if (d / "ak.tpm2b").exists():  # made earlier in this module on the same swtpm
        return ToolsAK(d, env, ek_alg, key_alg, scheme)
    d.mkdir()
    run(env, d, "tpm2_createek", "-c", "ek.ctx", "-G", ek_alg, "-u", "ek.pub")
    run(env, d, "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", key_alg, "-g", "sha256",
        "-s", scheme, "-u", "ak.pem", "-f", "pem", "-n", "ak.name")  # fmt: skip
    run(env, d, "tpm2_readpublic", "-c", "ak.ctx", "-o", "ak.tpm2b")
    return ToolsAK(d, env, ek_alg, key_alg, scheme)


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tpm2tools")


@pytest.fixture(scope="module", params=[("ecc", "ecdsa"), ("rsa", "rsassa"), ("rsa", "rsapss")],
                ids=["ecdsa", "rsassa", "rsapss"])  # fmt: skip
def tools_ak(request: pytest.FixtureRequest, swtpm: Swtpm, tools_dir: Path) -> Iterator[ToolsAK]:
    key_alg, scheme = request.param
    yield make_ak(swtpm, tools_dir, "rsa", key_alg, scheme)


def _verify(ak: ToolsAK, msg: bytes, sig: bytes, pcrs_file: Path, nonce: bytes = NONCE) -> object:
    _, values = read_pcr_file(pcrs_file.read_bytes())
    return verify_quote(msg, sig, ak.public(), nonce=nonce, pcrs=values,
                        selection={"sha256": [0, 1, 2, 3, 7, 16]})  # fmt: skip


def test_real_quote_verifies(tools_ak: ToolsAK) -> None:
    run(tools_ak.env, tools_ak.dir, "tpm2_pcrextend", f"16:sha256={'ab' * 32}")
    m, s, o = tools_ak.quote("q1")
    _, values = read_pcr_file(o.read_bytes())
    verified = verify_quote(m.read_bytes(), s.read_bytes(), tools_ak.public(), nonce=NONCE,
                            pcrs=values)  # fmt: skip
    assert verified.pcrs["sha256"][16] == values["sha256"][16]
    assert verified.ak_name == (tools_ak.dir / "ak.name").read_bytes()
    # The PEM key from tpm2_createak verifies the same quote.
    pem = load_public((tools_ak.dir / "ak.pem").read_bytes())
    assert not isinstance(pem, Public)
    verify_quote(m.read_bytes(), s.read_bytes(), pem, nonce=NONCE, pcrs=values)


def test_qualified_signer_matches_ek_chain(tools_ak: ToolsAK) -> None:
    m, s, o = tools_ak.quote("qn")
    ek = load_public((tools_ak.dir / "ek.pub").read_bytes())
    assert isinstance(ek, Public)
    ak = tools_ak.public()
    qn_ek = qualified_name(int(TPMHandle.RH_ENDORSEMENT).to_bytes(4, "big"), ek.name(), ek.name_alg)
    qn = qualified_name(qn_ek, ak.name(), ak.name_alg)
    _, values = read_pcr_file(o.read_bytes())
    verify_quote(m.read_bytes(), s.read_bytes(), ak, nonce=NONCE, pcrs=values, qualified_signer=qn)
    with pytest.raises(QualifiedSignerError):
        verify_quote(m.read_bytes(), s.read_bytes(), ak, nonce=NONCE, pcrs=values,
                     qualified_signer=qn[:-1] + bytes([qn[-1] ^ 1]))  # fmt: skip


def test_every_one_byte_change_fails(tools_ak: ToolsAK) -> None:
    m, s, o = tools_ak.quote("mut")
    msg, sig = m.read_bytes(), s.read_bytes()
    _verify(tools_ak, msg, sig, o)
    for i in range(len(msg)):
        bad = bytearray(msg)
        bad[i] ^= 0x01
        with pytest.raises(QuoteSignatureError):
            _verify(tools_ak, bytes(bad), sig, o)
    for i in range(len(sig)):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        with pytest.raises(VerificationError):
            _verify(tools_ak, msg, bytes(bad), o)


def test_different_nonce_pcrs_or_selection_fail(tools_ak: ToolsAK) -> None:
    m, s, o = tools_ak.quote("neg")
    msg, sig = m.read_bytes(), s.read_bytes()
    with pytest.raises(QuoteNonceError):
        _verify(tools_ak, msg, sig, o, nonce=NONCE[:-1] + b"\x00")
    _, values = read_pcr_file(o.read_bytes())
    values["sha256"][7] = b"\x01" * 32
    with pytest.raises(PCRDigestError):
        verify_quote(msg, sig, tools_ak.public(), nonce=NONCE, pcrs=values)
    _, values = read_pcr_file(o.read_bytes())
    with pytest.raises(PCRSelectionError):
        verify_quote(msg, sig, tools_ak.public(), nonce=NONCE, pcrs=values,
                     selection={"sha256": [0, 1, 2, 3, 7]})  # fmt: skip


def test_clock_moves_forward_and_replay_is_rejected(tools_ak: ToolsAK) -> None:
    first = tools_ak.quote("c1")
    second = tools_ak.quote("c2")
    _, values = read_pcr_file(first[2].read_bytes())
    v1 = verify_quote(first[0].read_bytes(), first[1].read_bytes(), tools_ak.public(),
                      nonce=NONCE, pcrs=values)  # fmt: skip
    v2 = verify_quote(second[0].read_bytes(), second[1].read_bytes(), tools_ak.public(),
                      nonce=NONCE, pcrs=values, last=v1.state)  # fmt: skip
    assert v2.reboot is None and v2.state > v1.state
    with pytest.raises(ClockRegressionError):
        verify_quote(first[0].read_bytes(), first[1].read_bytes(), tools_ak.public(),
                     nonce=NONCE, pcrs=values, last=v2.state)  # fmt: skip
    later_boot = QuoteState(v1.state.reset_count + 1, 0, 0)
    with pytest.raises(ClockRegressionError):
        verify_quote(first[0].read_bytes(), first[1].read_bytes(), tools_ak.public(),
                     nonce=NONCE, pcrs=values, last=later_boot)  # fmt: skip


def test_tpm2_checkquote_agrees_on_the_same_files(tools_ak: ToolsAK) -> None:
    """tpm2_checkquote 5.4 accepts the RSASSA/ECDSA quotes but refuses swtpm's valid
    RSAPSS quotes; trustedge accepts all three (test_real_quote_verifies)."""
    m, s, o = tools_ak.quote("cq")
    proc = subprocess.run(
        ["tpm2_checkquote", "-u", "ak.pem", "-m", str(m), "-s", str(s), "-f", str(o),
         "-g", "sha256", "-q", NONCE.hex()],
        cwd=tools_ak.dir, env=tools_ak.env, capture_output=True, check=False,
    )  # fmt: skip
    if tools_ak.scheme == "rsapss":
        assert proc.returncode != 0
        _verify(tools_ak, m.read_bytes(), s.read_bytes(), o)
    else:
        assert proc.returncode == 0, proc.stderr


def test_sha1_bank_needs_policy(swtpm: Swtpm, tools_dir: Path) -> None:
    ak = make_ak(swtpm, tools_dir, "ecc", "ecc", "ecdsa")
    m, s, o = ak.quote("sha1", pcrs="sha1:0+sha256:0")
    _, values = read_pcr_file(o.read_bytes())
    with pytest.raises(VerificationError):
        verify_quote(m.read_bytes(), s.read_bytes(), ak.public(), nonce=NONCE, pcrs=values)
    policy = QuotePolicy(allowed_banks=frozenset({"sha1", "sha256"}))
    verify_quote(m.read_bytes(), s.read_bytes(), ak.public(), nonce=NONCE, pcrs=values,
                 policy=policy)  # fmt: skip


def test_swtpm_power_cycle_is_reported_as_reboot(
    swtpm_factory: type[Swtpm], tmp_path: Path
) -> None:
    """A primary AK in the endorsement hierarchy is the same key after a restart, so
    quotes before and after a power cycle feed the (resetCount, restartCount, clock) rule."""
    tpm = swtpm_factory().start()
    attrs = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign"

    def quote(tag: str) -> tuple[bytes, bytes, dict[str, dict[int, bytes]]]:
        env = tpm.env()  # the port changes on restart
        run(env, tmp_path, "tpm2_createprimary", "-C", "e", "-g", "sha256", "-G",
            "ecc256:ecdsa-sha256:null", "-a", attrs, "-c", "ak.ctx")  # fmt: skip
        run(env, tmp_path, "tpm2_readpublic", "-c", "ak.ctx", "-o", "ak.tpm2b")
        out = ["-m", f"{tag}.msg", "-s", f"{tag}.sig", "-o", f"{tag}.pcrs"]
        run(env, tmp_path, "tpm2_quote", "-c", "ak.ctx", "-l", "sha256:0,16", "-q", NONCE.hex(),
            *out, "-g", "sha256")  # fmt: skip
        _, values = read_pcr_file((tmp_path / f"{tag}.pcrs").read_bytes())
        return (
            (tmp_path / f"{tag}.msg").read_bytes(),
            (tmp_path / f"{tag}.sig").read_bytes(),
            values,
        )

    def ak() -> Public:
        pub = load_public((tmp_path / "ak.tpm2b").read_bytes())
        assert isinstance(pub, Public)
        return pub

    m1, s1, p1 = quote("before")
    first = verify_quote(m1, s1, ak(), nonce=NONCE, pcrs=p1)
    before_key = ak()
    tpm.restart()
    m2, s2, p2 = quote("after")
    assert ak() == before_key
    second = verify_quote(m2, s2, ak(), nonce=NONCE, pcrs=p2, last=first.state)
    assert second.reboot == "reset"
    assert second.state.reset_count > first.state.reset_count
    # The quote from before the power cycle can no longer be accepted.
    with pytest.raises(ClockRegressionError):
        verify_quote(m1, s1, ak(), nonce=NONCE, pcrs=p1, last=second.state)


def test_software_tpm_quote_has_the_layout_of_a_real_one(tools_dir: Path, swtpm: Swtpm) -> None:
    """Same request to swtpm and to the SoftwareTPM: same size and the same bytes
    everywhere except the key-, clock- and firmware-dependent fields."""
    from trustedge.attestation.backends.software import SoftwareTPM

    ak = make_ak(swtpm, tools_dir, "ecc", "ecc", "ecdsa")
    m, s, _ = ak.quote("layout")
    real, real_sig = m.read_bytes(), s.read_bytes()
    soft = SoftwareTPM(tools_dir / "soft-layout")
    soft_ak = soft.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    q = soft.quote(soft_ak, NONCE, {"sha256": [0, 1, 2, 3, 7, 16]})
    assert len(q.message) == len(real) == 145
    assert len(q.signature) == len(real_sig)
    a, b = Attest.unmarshal(real), Attest.unmarshal(q.message)
    assert (a.magic, a.type, a.extra_data, a.attested.pcr_select) == (  # type: ignore[union-attr]
        b.magic,
        b.type,
        b.extra_data,
        b.attested.pcr_select,  # type: ignore[union-attr]
    )
    assert len(a.qualified_signer) == len(b.qualified_signer) == 34
    assert q.signature[:4] == real_sig[:4]  # TPM_ALG_ECDSA, TPM_ALG_SHA256
