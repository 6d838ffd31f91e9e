#!/usr/bin/env python3
"""Generate vectors/envelope/envelope.json: trustedge envelopes made with fixed
keys and a fixed randomness stream (valid ones, and one per tamper class).

    python tools/vectors/gen_envelope.py           # (re)write the file
    python tools/vectors/gen_envelope.py --check   # exit 1 if the file differs
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402

from trustedge import envelope  # noqa: E402
from trustedge.envelope import _cobblestone as cb  # noqa: E402
from trustedge.envelope._format import binding, encode_prefix, read_prefix  # noqa: E402

OUT = ROOT / "vectors" / "envelope" / "envelope.json"
KEK_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
OTHER_KEK = bytes(range(100, 132))
HPKE_SK = hashlib.sha256(b"trustedge vector hpke recipient").digest()
BOX_SK = hashlib.sha256(b"trustedge vector sealed-box recipient").digest()
BIG = 2 * cb.CHUNK_SIZE + 10


def rng_for(label: str) -> Callable[[int], bytes]:
    """A deterministic byte stream (SHA-256 in counter mode) per test case."""
    state = {"n": 0}

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{state['n']}".encode()).digest()
            state["n"] += 1
        return out[:n]

    return rng


def message(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def body_offset(data: bytes) -> int:
    return read_prefix(io.BytesIO(data).read).body_offset


def flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


def case(comment: str, env: bytes, *, msg: bytes | None = None, error: str | None = None,
         flags: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"comment": comment, "flags": flags or [], "envelope": env.hex()}
    t.update(extra)
    if error is None:
        assert msg is not None
        t["msgLength"] = len(msg)
        if len(msg) <= 1024:
            t["msg"] = msg.hex()
        t["msgSha256"] = hashlib.sha256(msg).hexdigest()
        t["result"] = "valid"
    else:
        t["result"] = "invalid"
        t["error"] = error
    return t


def kek_group() -> dict[str, Any]:
    kek = envelope.KEK(KEK_KEY)
    tests = []
    ctx = {"device": "gw-7", "stream": "telemetry"}
    for n in (0, 7, cb.CHUNK_SIZE - 1, cb.CHUNK_SIZE, cb.CHUNK_SIZE + 1):
        msg = message(n)
        env = envelope.seal(msg, [kek], context=ctx, rng=rng_for(f"kek-{n}"))
        tests.append(case(f"{n}-byte message, KEK slot", env, msg=msg))
    msg = message(100)
    env = envelope.seal(msg, [kek], suite=envelope.SUITE_CHACHA20_POLY1305, rng=rng_for("chacha"))
    tests.append(case("ChaCha20-Poly1305 suite", env, msg=msg, flags=["ChaChaSuite"]))
    unsized = envelope.seal(io.BytesIO(msg), [kek], rng=rng_for("unsized"))
    tests.append(case("no size in the header (sealed from a stream)", unsized, msg=msg))

    big = message(BIG)
    benv = envelope.seal(big, [kek], context=ctx, rng=rng_for("big"))
    tests.append(case("three chunks", benv, msg=big))
    c0 = body_offset(benv) + cb.HEADER_SIZE
    chunk0 = benv[c0 : c0 + cb.CT_CHUNK_SIZE]
    chunk1 = benv[c0 + cb.CT_CHUNK_SIZE : c0 + 2 * cb.CT_CHUNK_SIZE]
    tests.append(case("chunk 1 edited", flip(benv, c0 + cb.CT_CHUNK_SIZE + 5),
                      error="ChunkAuthenticationError", flags=["ModifiedBody"]))
    tests.append(case("chunks 0 and 1 swapped",
                      benv[:c0] + chunk1 + chunk0 + benv[c0 + 2 * cb.CT_CHUNK_SIZE :],
                      error="ChunkAuthenticationError", flags=["ChunkReordering"]))
    tests.append(case("final chunk dropped", benv[: c0 + 2 * cb.CT_CHUNK_SIZE],
                      error="TruncationError", flags=["Truncation"]))
    tests.append(case("chunk 0 appended after the final chunk", benv + chunk0,
                      error="TrailingDataError", flags=["TrailingData"]))

    env = envelope.seal(msg, [kek], context=ctx, rng=rng_for("small"))
    tests.append(case("required context matches", env, msg=msg, requiredContext={"device": "gw-7"}))
    tests.append(case("required context differs", env, requiredContext={"device": "gw-8"},
                      error="ContextMismatchError", flags=["WrongContext"]))
    body = body_offset(env)
    hdr = env.index(b"gw-7")
    tests.append(case("header edited (context value)", env[:hdr] + b"gw-8" + env[hdr + 4 :],
                      error="CommitmentError", flags=["ModifiedHeader"]))
    tests.append(case("slot wrapped key edited", flip(env, body - 3), error="KeyNotFoundError",
                      flags=["ModifiedSlot"]))
    tests.append(case("salt edited", flip(env, body + 1), error="CommitmentError",
                      flags=["ModifiedBody"]))
    tests.append(case("commitment edited", flip(env, body + 40), error="CommitmentError",
                      flags=["ModifiedBody"]))
    tests.append(case("chunk edited", flip(env, body + cb.HEADER_SIZE + 5),
                      error="ChunkAuthenticationError", flags=["ModifiedBody"]))
    tests.append(case("final tag edited", flip(env, len(env) - 1),
                      error="ChunkAuthenticationError", flags=["ModifiedBody"]))
    tests.append(case("cut inside the final tag", env[:-3], error="TruncationError",
                      flags=["Truncation"]))
    tests.append(case("bytes appended", env + b"\x00" * 20, error="TrailingDataError",
                      flags=["TrailingData"]))
    tests.append(case("bad magic", b"XEnv" + env[4:], error="MalformedInputError",
                      flags=["Malformed"]))
    tests.append(case("unknown format version", env[:4] + b"\x02" + env[5:],
                      error="UnsupportedAlgorithmError", flags=["Malformed"]))
    tests.append(case("envelope cut inside its prefix", env[: body - 10],
                      error="MalformedInputError", flags=["Malformed"]))
    other = envelope.seal(msg, [envelope.KEK(OTHER_KEK)], rng=rng_for("other"))
    tests.append(case("only a slot for another KEK", other, error="KeyNotFoundError",
                      flags=["WrongKey"]))
    # A slot that authenticates under this KEK but holds a different file key.
    prefix = read_prefix(io.BytesIO(env).read)
    evil = kek.wrap(b"\x42" * 32, binding(prefix.header_bytes), rng_for("evil"))
    forged = encode_prefix(prefix.header_bytes, [evil]) + env[prefix.body_offset :]
    tests.append(case("slot unwraps to a different file key (invisible salamander)", forged,
                      error="CommitmentError", flags=["Salamander"]))
    return {"type": "EnvelopeOpen", "keyType": "kek", "key": KEK_KEY.hex(), "tests": tests}


def hpke_group() -> dict[str, Any]:
    sk = x25519.X25519PrivateKey.from_private_bytes(HPKE_SK)
    ident = envelope.HPKEIdentity(sk)
    msg = message(300)
    env = envelope.seal(msg, [ident.recipient, envelope.KEK(OTHER_KEK)], rng=rng_for("hpke"))
    tests = [case("HPKE X25519 recipient among two slots", env, msg=msg)]
    body = body_offset(env)
    p = read_prefix(io.BytesIO(env).read)
    # the HPKE slot is first: flip a byte of its enc (just after its kek_id)
    pos = env.index(ident.kek_id.encode(), p.slots_offset) + len(ident.kek_id) + 25
    assert pos < body
    tests.append(case("HPKE slot edited", flip(env, pos), error="KeyNotFoundError",
                      flags=["ModifiedSlot"]))
    return {"type": "EnvelopeOpen", "keyType": "hpke-x25519", "key": HPKE_SK.hex(),
            "tests": tests}


def box_group() -> dict[str, Any]:
    ident = envelope.SealedBoxIdentity(BOX_SK)
    msg = message(50)
    env = envelope.seal(msg, [ident.recipient], rng=rng_for("box"))
    return {"type": "EnvelopeOpen", "keyType": "sealed-box", "key": BOX_SK.hex(),
            "tests": [case("libsodium sealed-box recipient", env, msg=msg)]}


def build() -> str:
    groups = [kek_group(), hpke_group(), box_group()]
    n = 0
    for g in groups:
        for t in g["tests"]:
            n += 1
            t["tcId"] = n
            t.update({k: t.pop(k) for k in list(t) if k not in ("tcId",)})
        g["tests"] = [{"tcId": t["tcId"], **{k: v for k, v in t.items() if k != "tcId"}}
                      for t in g["tests"]]
    doc = {
        "schema": "trustedge-vectors/1",
        "algorithm": "trustedge envelope v1 (Cobblestone-256 body, key slots)",
        "source": "fixed keys, SHA-256 counter-mode randomness per case",
        "generator": "tools/vectors/gen_envelope.py",
        "notes": {
            "ChaChaSuite": "suite 2: the Cobblestone construction over ChaCha20-Poly1305",
            "WrongContext": "the caller requires a context value the header does not hold",
            "ModifiedHeader": "header bytes edited: must fail the key commitment",
            "ModifiedSlot": "slot bytes edited: the slot must not unwrap",
            "ModifiedBody": "salt, commitment, chunk or tag edited",
            "ChunkReordering": "chunks swapped: the counter in the nonce must reject them",
            "Truncation": "the body ends early",
            "TrailingData": "bytes follow the final chunk",
            "Malformed": "the prefix does not parse",
            "WrongKey": "no slot opens with the given key",
            "Salamander": "a slot authenticates but yields another file key",
        },
        "numberOfTests": n,
        "testGroups": groups,
    }
    return json.dumps(doc, indent=1) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = build()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
