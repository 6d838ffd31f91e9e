"""``trustedge hash``: digests of large files and model directories.

``trustedge hash FILE|DIR... [--tree|--tree-only] [--json] [--leaf-size N] [--threads N]``
prints whole-file SHA-256 lines (the ``sha256sum`` format) and, with ``--tree``,
the tree root too (``--tree-only``: the tree alone); a directory's files hash in parallel,
and ``--json`` or ``--tree`` gives its model manifest (both digests of every file). ``-`` is
stdin; pipes and devices (``/dev/stdin``, ``<(cmd)``, ``/dev/null``) are hashed as streams.
``trustedge hash verify FILE|DIR... --digest HEX|@digest.json [--range START:END]
[--all-digests]`` checks each against the cheapest sufficient digest the sidecar holds (the
tree when it has one) and prints ``FILE: OK (...)`` (several files: one line each, their
entries looked up in one digest file); ``trustedge hash -c SUMS`` checks a ``sha256sum`` file
like ``sha256sum -c``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hmac
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustedge import hashing
from trustedge._cli._batch import run_batch
from trustedge._cli._common import (
    EXIT_ENVIRONMENT,
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
    Progress,
    add_json_flag,
    emit,
    failure_line,
    read_input,
)
from trustedge.errors import MalformedInputError, VerificationError

__all__ = ["register"]

#: Files larger than this get a progress bar on a TTY even without --progress.
PROGRESS_THRESHOLD = 256 * 1024 * 1024
#: Largest digest/manifest JSON file --digest reads.
DIGEST_FILE_LIMIT = 64 * 1024 * 1024

USAGE = """\
trustedge hash FILE|DIR... [--tree|--tree-only] [--json] [--leaf-size N] [--threads N]
                           [--progress]
trustedge hash verify FILE|DIR... --digest HEX|@FILE.json [--range START:END]... [--all-digests]
trustedge hash -c SUMS... (sha256sum format: HEX  FILE)"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trustedge hash`` (and ``hash verify``) to the top-level parser."""
    p = sub.add_parser(
        "hash",
        usage=USAGE,
        help="SHA-256 and tree digests of large files and model directories",
        description="Hash files (whole-file SHA-256, plus the tree digest with --tree) or "
        "model directories (a manifest of every file). 'hash verify' checks a file or "
        "directory against a digest. Exit 1 when verification fails.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE|DIR", help="files or directories")
    p.add_argument(
        "--tree",
        action="store_true",
        help="also compute the tree digest (one more SHA-256 pass: about twice the CPU)",
    )
    p.add_argument(
        "--tree-only",
        action="store_true",
        help="only the tree digest of each file (parallel leaves: the fastest full digest)",
    )
    p.add_argument(
        "-c",
        "--check",
        action="store_true",
        help="read SHA-256 sums (sha256sum format) from the FILEs and check them",
    )
    p.add_argument(
        "--leaf-size",
        type=_size,
        default=hashing.DEFAULT_LEAF_SIZE,
        help="tree leaf size, a power of two from 4K to 1G (default 4M)",
    )
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: CPUs)")
    p.add_argument("--progress", action="store_true", help="progress bar on a TTY")
    p.add_argument("--digest", help="verify: 64 hex digits (SHA-256) or @FILE.json")
    p.add_argument(
        "--range",
        dest="ranges",
        action="append",
        type=_range,
        default=None,
        metavar="START:END",
        help="verify: only the leaves under this byte range (repeatable)",
    )
    p.add_argument(
        "--all-digests",
        action="store_true",
        help="verify: check every digest the sidecar holds (tree and whole-file SHA-256), "
        "not only the cheapest sufficient one (the tree)",
    )
    add_json_flag(p)
    p.set_defaults(handler=_run)


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text[-1:].upper() in units:
            return int(text[:-1]) * units[text[-1].upper()]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def _range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(start), int(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a START:END range: {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")
    try:
        hashing.tree_root(0, args.leaf_size, [])
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.paths[0] == "verify":
        if args.tree or args.tree_only:
            raise CommandError("--tree and --tree-only belong to hashing, not 'hash verify'")
        return _verify(args, args.paths[1:])
    if args.all_digests:
        raise CommandError("--all-digests belongs to 'trustedge hash verify'")
    if args.tree and args.tree_only:
        raise CommandError("--tree (both digests) and --tree-only (the tree) exclude each other")
    if args.check:
        if args.tree or args.tree_only or args.digest is not None or args.ranges is not None:
            raise CommandError("-c takes only sum files (and --json)")
        return _check(args)
    if args.digest is not None or args.ranges is not None:
        raise CommandError("--digest and --range belong to 'trustedge hash verify'")
    return _hash(args)


@contextlib.contextmanager
def _progress(
    args: argparse.Namespace, size: int, label: str
) -> Iterator[hashing.ProgressCallback | None]:
    """A progress callback drawing a bar on a TTY (--progress, or files > 256 MiB)."""
    bar = Progress(size, label) if args.progress or size > PROGRESS_THRESHOLD else None
    if bar is None or not bar.enabled:
        yield None
        return
    shown = bar
    try:
        yield lambda done, total: shown.update(done * size // max(total, 1))
    finally:
        shown.close()


def _hash(args: argparse.Namespace) -> int:
    files: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    lines: list[str] = []
    for name in args.paths:
        path = Path(name)
        if _is_stream(name):
            digest = _hash_stream(name, args.leaf_size)
            if args.tree_only:
                digest = dataclasses.replace(digest, sha256=None)
            if args.tree or args.tree_only:
                files.append({"path": name, **digest.to_json()})
                lines.append(_line(digest, name, tree=True))
            else:
                assert digest.sha256 is not None
                files.append({"path": name, "size": digest.size, "sha256": digest.sha256.hex()})
                lines.append(f"{digest.sha256.hex()}  {name}")
            continue
        if path.is_dir():
            from trustedge.hashing.manifest import hash_model, sha256_model  # (directories only)

            if args.tree_only:
                raise CommandError(
                    f"{name}: a directory's manifest carries both digests of every file; "
                    "use --tree (or no option for SHA-256 lines)"
                )
            if not (args.tree or args.json):
                # Only what is printed: the SHA-256 of every file, all files at once on
                # the C workers (two SHA-NI streams per worker), like sha256sum/model_signing.
                with _progress(args, _dir_size(path), name) as cb:
                    sums = sha256_model(path, threads=args.threads, progress=cb)
                for rel, size, sha in sums:
                    shown = os.path.join(name, rel)
                    files.append({"path": shown, "size": size, "sha256": sha.hex()})
                    lines.append(f"{sha.hex()}  {shown}")
                continue
            with _progress(args, _dir_size(path), name) as cb:
                manifest = hash_model(path, args.leaf_size, threads=args.threads, progress=cb)
            models.append({"path": name, **manifest.to_json()})
            for f in manifest.files:
                lines.append(_line(f.digest, os.path.join(name, f.path), tree=args.tree))
            continue
        size = path.stat().st_size
        if args.tree_only:
            with _progress(args, size, name) as cb:
                digest = hashing.tree_digest(
                    path, args.leaf_size, threads=args.threads, progress=cb
                )
            files.append({"path": name, **digest.to_json()})
            lines.append(_line(digest, name, tree=True))
        elif args.tree:
            with _progress(args, size, name) as cb:
                digest = hashing.hash_file(path, args.leaf_size, threads=args.threads, progress=cb)
            files.append({"path": name, **digest.to_json()})
            lines.append(_line(digest, name, tree=True))
        else:
            with _progress(args, size, name) as cb:
                sha = hashing.sha256_file(path, progress=cb)
            files.append({"path": name, "size": size, "sha256": sha.hex()})
            lines.append(f"{sha.hex()}  {name}")
    data: dict[str, Any] = {"files": files}
    if models:
        data["models"] = models
    emit(args, data, "\n".join(lines))
    return EXIT_OK


def _is_stream(name: str) -> bool:
    """``-``, a pipe, a character device or a socket: read sequentially, never by size."""
    if name == "-":
        return True
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False  # reported with its file name where it is opened
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


#: Largest stream hashed (a device such as /dev/zero would otherwise never end).
STREAM_LIMIT = 1 << 40


def _hash_stream(name: str, leaf_size: int) -> hashing.BlobDigest:
    hasher = hashing.BlobHasher(leaf_size)
    with contextlib.ExitStack() as stack:
        fh = sys.stdin.buffer if name == "-" else stack.enter_context(open(name, "rb"))
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
            if hasher.size > STREAM_LIMIT:
                raise CommandError(f"{name}: stream longer than {STREAM_LIMIT} bytes",
                                   exit_code=EXIT_MALFORMED)  # fmt: skip
    return hasher.digest()


def _sha256_of(name: str) -> bytes:
    if _is_stream(name):
        sha = _hash_stream(name, hashing.DEFAULT_LEAF_SIZE).sha256
        assert sha is not None
        return sha
    path = Path(name)
    if path.is_dir():
        raise CommandError(f"{name}: is a directory", exit_code=EXIT_ENVIRONMENT)
    return hashing.sha256_file(path)


#: One line of sha256sum output: 64 hex digits, space, then space (text) or * (binary).
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def _check(args: argparse.Namespace) -> int:
    """``sha256sum -c``: ``FILE: OK`` or ``FILE: FAILED`` per line, exit 1 if any failed;
    a line that is not ``HEX  FILE`` is malformed input (exit 3), not skipped."""
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    for sums in args.paths:
        text = read_input(sums, limit=DIGEST_FILE_LIMIT)
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInputError(f"{sums}: not a text file of SHA-256 sums") from None
        entries = [line for line in decoded.splitlines() if line.strip()]
        if not entries:
            raise MalformedInputError(f"{sums}: no SHA-256 sums (expected HEX  FILE lines)")
        for number, line in enumerate(entries, 1):
            match = _SUM_LINE.fullmatch(line)
            if match is None:
                raise MalformedInputError(
                    f"{sums}:{number}: not a sha256sum line (expected 64 hex digits, two "
                    "spaces, a file name)"
                )
            want, name = bytes.fromhex(match.group(1)), match.group(2)
            try:
                ok = hmac.compare_digest(_sha256_of(name), want)
                status = "OK" if ok else "FAILED"
            except (OSError, CommandError):
                ok, status = False, "FAILED open or read"
            results.append({"path": name, "ok": ok, "status": status})
            lines.append(f"{name}: {status}")
    failed = sum(not r["ok"] for r in results)
    emit(args, {"ok": not failed, "files": results}, "\n".join(lines))
    if failed:  # like sha256sum: the warning on stderr
        failure_line(f"WARNING: {failed} of {len(results)} computed checksums did NOT match")
        return EXIT_VERIFICATION
    return EXIT_OK


def _line(digest: hashing.BlobDigest, name: str, *, tree: bool) -> str:
    root = f"tree-v1:{digest.leaf_size}:{digest.root.hex()}"
    if digest.sha256 is None:
        return f"{root}  {name}"
    sha = digest.sha256.hex()
    if not tree:
        return f"{sha}  {name}"
    return f"{sha}  {root}  {name}"


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def _load_digest_json(spec: str) -> Any:
    try:
        with open(spec[1:], "rb") as fh:
            raw = fh.read(DIGEST_FILE_LIMIT + 1)
    except OSError as exc:
        raise CommandError(
            f"cannot read {spec[1:]}: {exc.strerror}", exit_code=EXIT_USAGE
        ) from None
    if len(raw) > DIGEST_FILE_LIMIT:
        raise CommandError("digest file too large", exit_code=EXIT_MALFORMED)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedInputError(f"{spec[1:]} is not JSON") from None


def _ok_line(doc: dict[str, Any]) -> str:
    return f"OK ({doc['files']} files)" if "files" in doc else "OK"


def _pick_file_digest(doc: Any, name: str) -> hashing.BlobDigest | tuple[int, bytes]:
    """A BlobDigest JSON, or the entry for ``name`` in ``trustedge hash --json`` output.

    An entry without a tree but with ``size`` and ``sha256`` (``hash --json FILE`` without
    ``--tree``) gives ``(size, sha256)``: the only digest it holds."""
    if isinstance(doc, dict) and isinstance(doc.get("files"), list) and "tree" not in doc:
        entries = [e for e in doc["files"] if isinstance(e, dict)]
        match = [e for e in entries if e.get("path") == name]
        if not match and len(entries) == 1:
            match = entries
        if len(match) != 1:
            raise MalformedInputError(f"digest file has no single entry for {name!r}")
        doc = {k: v for k, v in match[0].items() if k != "path"}
    if isinstance(doc, dict) and "tree" not in doc:
        if set(doc) == {"size", "sha256"}:
            size = doc["size"]
            if type(size) is not int or not 0 <= size < 1 << 63:
                raise MalformedInputError("size must be a non-negative 63-bit integer")
            return size, _hex_digest(doc["sha256"])
        raise MalformedInputError(
            "digest has neither a tree nor size and sha256: hash it with --tree or --json"
        )
    return hashing.BlobDigest.from_json(doc)


def _hex_digest(value: Any) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise MalformedInputError("sha256 must be 64 lowercase hex digits")
    return bytes.fromhex(value)


def _checked_note(checked: list[str], not_checked: list[str]) -> str:
    note = " and ".join(checked) + " verified"
    if not_checked:
        note += "; not checked: " + ", ".join(not_checked)
    return note


def _verify(args: argparse.Namespace, targets: list[str]) -> int:
    """Check one file or directory against the cheapest sufficient digest it has.

    The rule (docs/hashing.md, "Which digest hash verify checks"): exactly one digest is
    chosen from what the sidecar holds, before any byte of the file is read, never from
    what the file matches: the tree when there is one (it binds the same bytes and its
    leaves hash in parallel), else the whole-file SHA-256. A mismatch of the chosen digest
    fails, with no fallback to another. Digests left unchecked are named in the output
    (``not_checked`` in JSON); ``--all-digests`` checks every digest and fails if any
    differs, so a sidecar whose digests disagree with each other never passes it."""
    from trustedge.hashing.manifest import ModelManifest, verify_model

    if len(targets) > 1 and args.digest is not None:
        # batch mode: each target looked up in the digest file (`hash --json` of them all)
        return run_batch(args, targets, lambda a, i: _verify(a, [targets[i]]), line=_ok_line)
    if len(targets) != 1 or args.digest is None:
        raise CommandError("usage: trustedge hash verify FILE|DIR... --digest HEX|@FILE.json")
    name = targets[0]
    path = Path(name)
    spec: str = args.digest
    every: bool = args.all_digests
    if path.is_dir():
        if not spec.startswith("@") or args.ranges:
            raise CommandError("a directory verifies against @manifest.json, without --range")
        doc = _load_digest_json(spec)
        if isinstance(doc, dict) and isinstance(doc.get("models"), list) and doc["models"]:
            doc = {k: v for k, v in doc["models"][0].items() if k != "path"}
        manifest = ModelManifest.from_json(doc)
        with _progress(args, _dir_size(path), name) as cb:
            verify_model(path, manifest, check_sha256=every, threads=args.threads, progress=cb)
        checked, unchecked = (["tree", "sha256"], []) if every else (["tree"], ["sha256"])
        result = {
            "path": name,
            "verified": True,
            "files": len(manifest.files),
            "checked": checked,
            "not_checked": unchecked,
        }
        note = _checked_note(checked, unchecked)
        emit(args, result, f"{name}: OK ({len(manifest.files)} files; {note})")
        return EXIT_OK
    checked, unchecked = ["sha256"], []
    if spec.startswith("@"):
        picked = _pick_file_digest(_load_digest_json(spec), name)
        if isinstance(picked, tuple):
            if args.ranges:
                raise CommandError("--range needs a tree digest (hash it with --tree)")
            size, want = picked
            _verify_sha256(args, name, path, want, size)
        else:
            expected = picked
            if args.ranges:
                checked = ["tree leaves under the ranges"]
                unchecked = ["the other leaves"] + (["sha256"] if expected.sha256 else [])
            elif every or expected.sha256 is None:
                checked = ["tree"] + (["sha256"] if expected.sha256 else [])
            else:
                checked, unchecked = ["tree"], ["sha256"]
                expected = dataclasses.replace(expected, sha256=None)
            try:
                with _progress(args, expected.size, name) as cb:
                    hashing.verify_file(
                        path, expected, ranges=args.ranges, threads=args.threads, progress=cb
                    )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
    else:
        if args.ranges:
            raise CommandError("--range needs a tree digest (@FILE.json)")
        want_hex = spec.lower()
        if len(want_hex) != 64 or any(c not in "0123456789abcdef" for c in want_hex):
            raise CommandError("--digest must be 64 hex digits or @FILE.json")
        _verify_sha256(args, name, path, bytes.fromhex(want_hex), None)
        emit(args, {"path": name, "verified": True, "checked": checked}, f"{name}: OK")
        return EXIT_OK
    result = {"path": name, "verified": True, "checked": checked, "not_checked": unchecked}
    emit(args, result, f"{name}: OK ({_checked_note(checked, unchecked)})")
    return EXIT_OK


def _verify_sha256(
    args: argparse.Namespace, name: str, path: Path, want: bytes, size: int | None
) -> None:
    if _is_stream(name):
        got = _sha256_of(name)
    else:
        actual = path.stat().st_size
        if size is not None and actual != size:
            raise VerificationError(f"{name}: FAILED (file has {actual} bytes, expected {size})")
        with _progress(args, actual, name) as cb:
            got = hashing.sha256_file(path, progress=cb)
    if not hmac.compare_digest(got, want):
        raise VerificationError(f"{name}: FAILED (SHA-256 differs)")
