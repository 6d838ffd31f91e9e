#!/usr/bin/env python3
"""Generate vectors/fuzz/cbor_decode.json: hostile and edge-case CBOR with the expected outcome.

Every input the fuzz campaign (``tools/fuzz``) ever flagged is listed in
``FINDINGS`` below and stays here as a regression case; ``HOSTILE`` holds the
hand-made worst cases the harnesses are seeded with. Expectations are
written here, not computed, so the replay test
(``tests/vectors/test_fuzz_regressions.py``) checks the decoder against them.

    python tools/vectors/gen_fuzz.py           # write the file
    python tools/vectors/gen_fuzz.py --check   # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


OUT = ROOT / "vectors" / "fuzz" / "cbor_decode.json"

# (comment, input hex, options, flags, expected). Options: canonical, allowIndefinite,
# maxSize, maxDepth, maxItems (absent = the defaults of DecodeLimits). Expected is the
# error class a decoder must raise, or ok(<deterministic encoding of the value>).
Case = tuple[str, str, dict[str, Any], list[str], str]

DEEP = 32  # DecodeLimits().max_depth

M, L = "MalformedInputError", "LimitExceededError"


def ok(encoded: str) -> str:
    """Expected outcome of a valid case: the deterministic encoding of the decoded value."""
    return "valid:" + encoded


HOSTILE: list[Case] = [
    ("empty input", "", {}, ["Truncated"], M),
    ("reserved additional information 28", "1c", {}, ["Reserved"], M),
    ("reserved additional information 29", "3d", {}, ["Reserved"], M),
    ("reserved additional information 30", "5e", {}, ["Reserved"], M),
    ("indefinite length on an integer", "1f", {}, ["Reserved"], M),
    ("lone break", "ff", {}, ["Break"], M),
    ("simple value 'undefined'", "f7", {}, ["Simple"], M),
    ("simple value 0", "e0", {}, ["Simple"], M),
    ("one-byte simple value 32", "f820", {}, ["Simple"], M),
    ("truncated 2-byte argument", "1901", {}, ["Truncated"], M),
    ("truncated 8-byte argument", "1b00000000", {}, ["Truncated"], M),
    ("byte string claiming 2**64-1 bytes", "5bffffffffffffffff", {}, ["LyingLength"], M),
    ("text string claiming 4 GiB", "7affffffff616161", {}, ["LyingLength"], M),
    ("array claiming 2**64-1 elements", "9bffffffffffffffff00", {}, ["LyingLength"], M),
    ("map claiming 4G pairs", "baffffffff0000", {}, ["LyingLength"], M),
    ("array longer than the input", "8501020304", {}, ["LyingLength"], M),
    ("text string that is not UTF-8", "62c328", {}, ["Utf8"], M),
    ("text string with a lone surrogate", "63eda080", {}, ["Utf8"], M),
    ("duplicate integer map key", "a201000100", {}, ["DuplicateKey"], M),
    ("duplicate text map key", "a2616101616102", {}, ["DuplicateKey"], M),
    ("array as a map key", "a18000", {}, ["MapKey"], M),
    ("boolean as a map key", "a1f500", {}, ["MapKey"], M),
    ("null as a map key", "a1f600", {}, ["MapKey"], M),
    ("float as a map key", "a1f93c0000", {}, ["MapKey"], M),
    ("tagged value as a map key", "a1c10000", {}, ["MapKey"], M),
    ("trailing byte", "0000", {}, ["Trailing"], M),
    ("indefinite byte string when not allowed", "5f4101ff", {}, ["Indefinite"], M),
    ("indefinite array when not allowed", "9f01ff", {}, ["Indefinite"], M),
    ("indefinite map when not allowed", "bf0102ff", {}, ["Indefinite"], M),
    ("indefinite text string with a byte-string chunk", "7f4161ff", {"allowIndefinite": True},
     ["Indefinite"], M),
    ("nested indefinite string chunk", "5f5f4101ffff", {"allowIndefinite": True},
     ["Indefinite"], M),
    ("unterminated indefinite array", "9f0102", {"allowIndefinite": True}, ["Truncated"], M),
    ("unterminated indefinite map", "bf0102", {"allowIndefinite": True}, ["Truncated"], M),
    ("indefinite map with a key and no value", "bf01ff", {"allowIndefinite": True}, ["Break"], M),
    ("canonical: integer not in shortest form", "1805", {"canonical": True}, ["NonCanonical"], M),
    ("canonical: length not in shortest form", "580141", {"canonical": True}, ["NonCanonical"],
     M),
    ("canonical: map keys out of order", "a202000100", {"canonical": True}, ["NonCanonical"], M),
    ("canonical: float32 that fits in float16", "fa3f800000", {"canonical": True},
     ["NonCanonical"], M),
    ("canonical: NaN with a payload", "f97e01", {"canonical": True}, ["NonCanonical"], M),
    ("canonical: float64 NaN", "fb7ff8000000000000", {"canonical": True}, ["NonCanonical"], M),
    ("canonical: indefinite length", "9f01ff", {"canonical": True}, ["Indefinite"], M),
    ("nesting one deeper than the limit (arrays)", "81" * (DEEP + 1) + "00", {}, ["Depth"], L),
    ("nesting one deeper than the limit (tags)", "c1" * (DEEP + 1) + "00", {}, ["Depth"], L),
    ("nesting one deeper than the limit (maps)", "a100" * (DEEP + 1) + "00", {}, ["Depth"], L),
    ("deep nesting behind a small limit", "81818100", {"maxDepth": 2}, ["Depth"], L),
    ("more items than allowed", "8a" + "00" * 10, {"maxItems": 10}, ["Items"], L),
    ("indefinite string chunks count as items", "5f404040ff",
     {"allowIndefinite": True, "maxItems": 3}, ["Items"], L),
    ("input larger than allowed", "4700000000000000", {"maxSize": 7}, ["Size"], L),
    ("nesting exactly at the limit", "81" * DEEP + "00", {"canonical": True}, [],
     ok("81" * DEEP + "00")),
    ("smallest negative integer", "3bffffffffffffffff", {"canonical": True}, [],
     ok("3bffffffffffffffff")),
    ("largest tag number", "dbffffffffffffffff00", {"canonical": True}, [],
     ok("dbffffffffffffffff00")),
    ("non-shortest integer accepted when not canonical", "1805", {}, ["NonCanonical"], ok("05")),
    ("indefinite array when allowed", "9f0102ff", {"allowIndefinite": True}, [], ok("820102")),
    ("indefinite text string when allowed", "7f61616162ff", {"allowIndefinite": True}, [],
     ok("626162")),
    ("NaN with payload accepted when not canonical", "f97e01", {}, [], ok("f97e00")),
    ("negative zero", "f98000", {"canonical": True}, [], ok("f98000")),
]  # fmt: skip

#: Inputs the fuzz campaign flagged (each fixed in trustedge/_cbor.py), kept as regressions.
FINDINGS: list[Case] = []

NOTES = {
    "Truncated": "the input ends inside a data item",
    "Reserved": "additional information 28-30, or 31 where no indefinite form exists",
    "Break": "a break code (0xff) where no indefinite container is open",
    "Simple": "a simple value other than false/true/null, floats aside",
    "LyingLength": "a length field larger than the rest of the input: rejected before allocating",
    "Utf8": "a text string that is not valid UTF-8",
    "DuplicateKey": "the same map key twice (cbor2 would keep the last one silently)",
    "MapKey": "a map key that is not an integer, text or byte string",
    "Trailing": "bytes after the one data item",
    "Indefinite": "indefinite-length items, allowed only with allowIndefinite and never canonical",
    "NonCanonical": "not the deterministic encoding (RFC 8949 section 4.2.1)",
    "Depth": "nesting of arrays, maps and tags beyond maxDepth",
    "Items": "more data items than maxItems",
    "Size": "input larger than maxSize",
    "Fuzz": "found by the fuzz campaign (tools/fuzz)",
}


def _test(tc_id: int, case: Case) -> dict[str, Any]:
    comment, hexin, opts, flags, expected = case
    test: dict[str, Any] = {"tcId": tc_id, "comment": comment, "flags": flags, "input": hexin}
    test["canonical"] = bool(opts.get("canonical", False))
    test["allowIndefinite"] = bool(opts.get("allowIndefinite", False))
    for key in ("maxSize", "maxDepth", "maxItems"):
        if key in opts:
            test[key] = opts[key]
    if expected.startswith("valid:"):
        test["result"] = "valid"
        test["encoded"] = expected.removeprefix("valid:")
    else:
        test["result"] = "invalid"
        test["error"] = expected
    return test


def build() -> dict[str, Any]:
    cases = HOSTILE + [(c, h, o, [*f, "Fuzz"], e) for c, h, o, f, e in FINDINGS]
    tests = [_test(i, case) for i, case in enumerate(cases, start=1)]
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": "deterministic CBOR decoding of hostile input (RFC 8949)",
        "source": "hand-made worst cases and the fuzz campaign's findings (tools/fuzz)",
        "generator": "tools/vectors/gen_fuzz.py",
        "notes": NOTES,
        "numberOfTests": len(tests),
        "testGroups": [
            {
                "type": "CborDecode",
                "comment": "decode(input, canonical=, allow_indefinite=, limits=); "
                "valid cases give 'encoded', the deterministic encoding of the value",
                "tests": tests,
            }
        ],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run {Path(__file__).name}")
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({build()['numberOfTests']} tests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
