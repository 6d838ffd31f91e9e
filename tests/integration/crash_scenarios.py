"""Kill scenarios for ``tools/crashsafety.py``: one write of each persistent state type.

Run as a child script (never imported into a process that writes)::

    python tests/integration/crash_scenarios.py write NAME DIR VERSION [--wait]

loads whatever ``DIR`` holds, builds every object the write needs (imports, keys, stores), then
with ``--wait`` prints ``ready PID`` and blocks on one byte of stdin, so that the harness can
attach ``strace`` first and count only the system calls of the write itself. It then stores
version ``VERSION`` through the product's own code and exits at once (``os._exit``).

The harness imports this module for :data:`SCENARIOS` and calls each ``check(DIR)`` after a
kill: it loads the state the way the product does and returns its version (0: none yet), and
raises on anything that does not load, on partial output under a final name and on plaintext
anywhere in ``DIR``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_MAC_KEY = b"k" * 32
_COMPONENT = b"firmware"
_SEED = b"crash-safety-seed" * 2
_NV_INDEX = 0x01500020
_DEVICE = "crash-device"
_KEK = b"\x5a" * 32
_ENVELOPE = "payload.env"
_PLAINTEXT_SIZE = 256 * 1024  # several writes of the chunked envelope format
_ROOT_FILE = "root.cbor"
_ROOT_KEY = bytes(range(32))
_KEY_FILE = "signing.pem"
_AGENT_FILE = "agent-state.json"


@dataclass(frozen=True)
class Scenario:
    """``prepare(dir, version)`` returns the write to run; ``check(dir)`` the stored version."""

    name: str
    prepare: Callable[[Path, int], Callable[[], None]]
    check: Callable[[Path], int]
    #: The names the product reads; anything else left in the directory is reported.
    final_names: tuple[str, ...]
    #: True where the state is created, not replaced (key files): the old state is absence.
    fresh: bool = False


# -- OTA rollback state (FileStateStore): an update begun and confirmed -------------------


def _floor_digest(version: int) -> bytes:
    return hashlib.sha256(version.to_bytes(8, "big")).digest()


def _rollback_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge.ota import FileStateStore

    store = FileStateStore(state_dir, mac_key=_MAC_KEY)
    state = store.load()

    def write() -> None:
        pending = store.save(state.begin([_COMPONENT], version, _floor_digest(version)))
        store.save(pending.confirm())

    return write


def _rollback_check(state_dir: Path) -> int:
    from trustedge.ota import FileStateStore

    state = FileStateStore(state_dir, mac_key=_MAC_KEY).load()
    if state.has_pending:  # killed between begin and confirm: the reboot abandons it
        state = state.abandon()
    comp = state.component(_COMPONENT)
    if comp.floor and comp.floor_digest != _floor_digest(comp.floor):
        raise ValueError("the floor digest does not belong to the floor")
    return comp.floor


# -- trust roots: the device's adopted root version and the root file of `root init` -----


def _trustroot_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    """`root sign NEW --key K2 -o root.cbor` over the old root file, then the device adopts
    the new version (the order of `update apply --rotate`: the file first, then the floor)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustedge._cli import build_parser
    from trustedge.keys import private_key_to_pem
    from trustedge.ota import FileStateStore
    from trustedge.ota.trustroot import build_trust_root

    key = ed25519.Ed25519PrivateKey.from_private_bytes(_ROOT_KEY)
    second = ed25519.Ed25519PrivateKey.from_private_bytes(_ROOT_KEY[::-1])
    staging = state_dir.parent / f"{state_dir.name}-unsigned-root"
    staging.write_bytes(
        build_trust_root(
            version=version,
            expires=2_000_000_000 + version,
            root_keys=[key.public_key(), second.public_key()],
            root_threshold=1,
            firmware_keys=[key.public_key()],
            firmware_threshold=1,
            signers=[key],
        )
    )
    key_file = state_dir.parent / f"{state_dir.name}-root-key.pem"
    key_file.write_bytes(private_key_to_pem(second))
    args = build_parser().parse_args(
        ["root", "sign", str(staging), "--key", str(key_file), "-o", str(state_dir / _ROOT_FILE)]
    )
    store = FileStateStore(state_dir, mac_key=_MAC_KEY)
    state = store.load()
    devnull = os.open(os.devnull, os.O_WRONLY)

    def write() -> None:
        os.dup2(devnull, 1)  # the command's summary line is not the state under test
        if args.handler(args) != 0:
            raise SystemExit("root sign failed")
        store.save(state.apply_floor_reset(version, {}))

    return write


def _trustroot_check(state_dir: Path) -> int:
    from trustedge.ota import FileStateStore
    from trustedge.ota.trustroot import TrustRoot

    adopted = FileStateStore(state_dir, mac_key=_MAC_KEY).load().trust_root_version
    path = state_dir / _ROOT_FILE
    if not path.exists():
        if adopted:
            raise ValueError("a trust root was adopted but the root file is gone")
        return 0
    root = TrustRoot.load(path.read_bytes())  # raises on a torn or unsigned file
    if root.version not in (adopted, adopted + 1):
        raise ValueError(f"root file version {root.version} but version {adopted} adopted")
    return adopted  # the version the device enforces; the file is at most one ahead


# -- software TPM state: an NV counter increment ------------------------------------------


def _softtpm_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge.attestation.backends.software import SoftwareTPM

    tpm = SoftwareTPM(state_dir, seed=_SEED)
    if version == 1:
        tpm.nv_counter_define(_NV_INDEX)

    def write() -> None:
        tpm.nv_counter_increment(_NV_INDEX)

    return write


def _softtpm_check(state_dir: Path) -> int:
    from trustedge.attestation.backends.software import STATE_FILE, SoftwareTPM
    from trustedge.errors import BackendError

    if not (state_dir / STATE_FILE).exists():
        return 0
    tpm = SoftwareTPM(state_dir)  # raises on a torn or foreign state file
    try:
        return tpm.nv_counter_read(_NV_INDEX)
    except BackendError:  # defined, never incremented
        return 0


# -- verifier store (SQLite): the quote-clock compare-and-set -----------------------------

_DB = "verifier.db"


def _store_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge.attestation.store import DeviceRecord, QuoteClockState, SQLiteStore

    store = SQLiteStore(state_dir / _DB)
    if store.get_device(_DEVICE) is None:
        store.add_device(DeviceRecord(_DEVICE, ek_public=b"ek"))
    last = store.device_state(_DEVICE).quote

    def write() -> None:
        store.advance_quote_state(_DEVICE, last, QuoteClockState(1, 0, version))

    return write


def _store_check(state_dir: Path) -> int:
    from trustedge.attestation.store import SQLiteStore

    if not (state_dir / _DB).exists():
        return 0
    store = SQLiteStore(state_dir / _DB)
    try:
        quote = store.device_state(_DEVICE).quote
    finally:
        store.close()
    return 0 if quote is None else quote.clock


# -- envelope output: seal_file over the final name ---------------------------------------


def _plaintext(version: int) -> bytes:
    marker = b"PLAINTEXT-MARKER" + version.to_bytes(8, "big")
    return marker + hashlib.shake_256(marker).digest(_PLAINTEXT_SIZE)


def _envelope_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge import envelope

    src = state_dir.parent / f"{state_dir.name}-plaintext"
    src.write_bytes(_plaintext(version))
    keks = [envelope.KEK(_KEK)]

    def write() -> None:
        envelope.seal_file(src, state_dir / _ENVELOPE, keks)

    return write


def _envelope_check(state_dir: Path) -> int:
    from trustedge import envelope

    for path in state_dir.iterdir():  # no plaintext under any name in the output directory
        if b"PLAINTEXT-MARKER" in path.read_bytes():
            raise ValueError(f"plaintext visible in {path.name}")
    path = state_dir / _ENVELOPE
    if not path.exists():
        return 0
    plain = envelope.open(path.read_bytes(), [envelope.KEK(_KEK)])
    version = int.from_bytes(plain[16:24], "big")
    if plain != _plaintext(version):
        raise ValueError("the envelope opened to the wrong plaintext")
    return version


# -- key files: `release keygen -o` (created, never replaced) -----------------------------


def _keys_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge._cli import build_parser

    # The command's own handler, parsed (and its modules imported) before the trace begins.
    args = build_parser().parse_args(
        ["release", "keygen", "-o", str(state_dir / _KEY_FILE), "--json"]
    )
    devnull = os.open(os.devnull, os.O_WRONLY)

    def write() -> None:
        os.dup2(devnull, 1)  # the command's JSON output is not the state under test
        args.handler(args)

    return write


def _keys_check(state_dir: Path) -> int:
    from trustedge.keys import load_private_key, load_public_key

    key_path, pub_path = state_dir / _KEY_FILE, state_dir / (_KEY_FILE + ".pub")
    if not key_path.exists():
        if pub_path.exists():
            raise ValueError("a public key without its private key")
        return 0
    if key_path.stat().st_mode & 0o077:
        raise ValueError(f"private key readable by others ({key_path.stat().st_mode:o})")
    key = load_private_key(key_path.read_bytes())  # raises on a partial key
    if pub_path.exists():
        pub = load_public_key(pub_path.read_bytes())
        if pub != key.public_key():
            raise ValueError("the public key file does not belong to the private key")
    return 1


# -- fleet agent state: the agent's own _save -----------------------------------------------


def _agent_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    from trustedge.fleet.agent import Agent, AgentState

    path = state_dir / _AGENT_FILE
    state = AgentState.decode(path.read_bytes()) if path.exists() else AgentState(_DEVICE)
    state.pushes = version
    state.last_error = "e" * 4096 * (version % 3 + 1)  # a few pages: several writes
    agent = SimpleNamespace(config=SimpleNamespace(state_path=path), state=state)

    def write() -> None:
        Agent._save(agent)  # type: ignore[arg-type]  # the real method on its two fields

    return write


def _agent_check(state_dir: Path) -> int:
    from trustedge.fleet.agent import AgentState

    path = state_dir / _AGENT_FILE
    if not path.exists():
        return 0
    state = AgentState.decode(path.read_bytes())
    if state.last_error != "e" * 4096 * (state.pushes % 3 + 1):
        raise ValueError("agent state fields from two different writes")
    return state.pushes


# -- the OTA state's sealed MAC key: confirm on the new chain (floors, revocation, policies) -

_POLICY_NV = 0x01500021
_SEALED_TPM = "tpm"


def _sealed_world(state_dir: Path) -> SimpleNamespace:
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge.attestation.backends.software import SoftwareTPM
    from trustedge.hazmat.tpm2.policy import authority_public
    from trustedge.ota.bootchain import PolicyCounter, sign_pcr_policy
    from trustedge.ota.sealedstate import SealedStateKey

    key = ec.derive_private_key(0x5EA1ED, ec.SECP256R1())
    tpm = SoftwareTPM(state_dir / _SEALED_TPM, seed=_SEED)
    authority = authority_public(key.public_key()).marshal_tpm2b()
    counter = PolicyCounter(tpm, _POLICY_NV)

    def boot(chain: bytes) -> None:
        tpm.reboot()
        tpm.pcr_extend(4, {"sha256": hashlib.sha256(chain).digest()})

    def policy(version: int) -> bytes:
        values = tpm.pcr_read({"sha256": [4, 7]})
        return sign_pcr_policy(
            values, key, nv_index=_POLICY_NV, nv_name=counter.name, version=version
        ).encode()

    def sealed() -> SealedStateKey:
        return SealedStateKey(state_dir, tpm, authority=authority)

    return SimpleNamespace(tpm=tpm, counter=counter, boot=boot, policy=policy, sealed=sealed)


def _updater(store: object) -> object:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustedge.ota import FileSystemDevice, KeySet, Updater

    trust = KeySet.of([ed25519.Ed25519PrivateKey.from_private_bytes(_ROOT_KEY).public_key()])
    device = FileSystemDevice("/nonexistent", vendor_id=bytes(16), class_id=bytes(16))
    return Updater(trust, store, device)  # type: ignore[arg-type]


def _sealed_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    """Version 1: provisioned on chain A (the write: seal the key, write the first state).
    Version 2: an update to chain B staged and begun, booted into B (the write: confirm)."""
    from trustedge.ota.sealedstate import SealedStateKey

    w = _sealed_world(state_dir)
    if version == 1:
        w.boot(b"chain A")
        first = w.counter.provision()
        (state_dir / "chain-a.version").write_text(str(first))  # for the check only
        policy = w.policy(first)

        def provision() -> None:
            key = SealedStateKey.provision(
                state_dir, w.tpm, authority=w.sealed().authority, policy=policy
            )
            key.provision_store(_NV_INDEX)

        return provision
    w.boot(b"chain A")
    key = w.sealed()
    store = key.open_store(_NV_INDEX)
    w.boot(b"chain B")
    key.stage(w.policy(w.counter.next_version()))
    store.save(store.load().begin([_COMPONENT], version, _floor_digest(version)))
    key = w.sealed()
    updater = _updater(key.open_store(_NV_INDEX))

    def confirm() -> None:
        key.confirm(updater, w.counter)  # type: ignore[arg-type]

    return confirm


def _sealed_check(state_dir: Path) -> int:
    """Boot B, then A: the state must open under one of them; once the counter advanced, only
    under B, with the floor raised. Version 2 = the old chain is revoked."""
    from trustedge.errors import AccessDeniedError

    if not (state_dir / "state-key.sealed").exists():
        if (state_dir / "state.0").exists() or (state_dir / "state.1").exists():
            raise ValueError("a state without its sealed key")
        return 0
    w = _sealed_world(state_dir)
    opened = {}
    for chain in (b"chain B", b"chain A"):
        w.boot(chain)
        try:
            opened[chain] = w.sealed().open_store(_NV_INDEX).load()
        except AccessDeniedError:
            continue
    if not opened:
        raise ValueError("the state opens under no boot chain")
    advanced = w.counter.version > int((state_dir / "chain-a.version").read_text())
    if not advanced:
        return 1
    if b"chain A" in opened:
        raise ValueError("the counter advanced but the old chain still opens the state")
    state = opened.get(b"chain B")
    if state is None or state.component(_COMPONENT).floor != 2:  # the new version's
        raise ValueError("the old chain is revoked but the floor did not rise")
    return 2


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ota-rollback-state", _rollback_prepare, _rollback_check, ("state.0", "state.1")),
        Scenario(
            "trust-roots",
            _trustroot_prepare,
            _trustroot_check,
            ("state.0", "state.1", _ROOT_FILE),
        ),
        Scenario("software-tpm-state", _softtpm_prepare, _softtpm_check, ("softtpm.cbor",)),
        Scenario("verifier-store", _store_prepare, _store_check, (_DB, f"{_DB}-wal", f"{_DB}-shm")),
        Scenario("envelope-output", _envelope_prepare, _envelope_check, (_ENVELOPE,)),
        Scenario(
            "key-files", _keys_prepare, _keys_check, (_KEY_FILE, _KEY_FILE + ".pub"), fresh=True
        ),
        Scenario("fleet-agent-state", _agent_prepare, _agent_check, (_AGENT_FILE,)),
        Scenario(
            "ota-sealed-state-key",
            _sealed_prepare,
            _sealed_check,
            ("state.0", "state.1", "state-key.sealed", "state-key.policy", "state-key.pending"),
        ),
    )
}


# -- broken on purpose: shows that the harness catches a write in place --------------------


def _in_place_prepare(state_dir: Path, version: int) -> Callable[[], None]:
    data = _plaintext(version)[:65536]

    def write() -> None:
        with open(state_dir / "in-place", "wb") as fh:  # truncates the old state first
            for i in range(0, len(data), 8192):
                fh.write(data[i : i + 8192])
                fh.flush()

    return write


def _in_place_check(state_dir: Path) -> int:
    path = state_dir / "in-place"
    if not path.exists():
        return 0
    data = path.read_bytes()
    version = int.from_bytes(data[16:24], "big")
    if data != _plaintext(version)[:65536]:
        raise ValueError(f"torn: {len(data)} bytes")
    return version


BROKEN: dict[str, Scenario] = {
    "broken-in-place": Scenario("broken-in-place", _in_place_prepare, _in_place_check, ()),
}
ALL: dict[str, Scenario] = {**SCENARIOS, **BROKEN}


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "write":
        sys.exit("usage: crash_scenarios.py write NAME DIR VERSION [--wait]")
    write = ALL[argv[1]].prepare(Path(argv[2]), int(argv[3]))
    if "--wait" in argv[4:]:
        print(f"ready {os.getpid()}", flush=True)
        if sys.stdin.buffer.read(1) != b"g":
            os._exit(2)
    write()
    os._exit(0)  # no interpreter shutdown: the write is all that is traced


if __name__ == "__main__":
    main(sys.argv[1:])
