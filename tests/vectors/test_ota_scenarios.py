"""vectors/ota/scenarios.json: ordered update scenarios, each on a fresh device."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import PROJECT_VECTORS, error_class, load_vector_file
from trustedge.cose import decode_key
from trustedge.ota import (
    FileStateStore,
    FileSystemDevice,
    KeySet,
    TrustRoot,
    Updater,
    component_key,
)
from trustedge.ota.suit.codec import DEFAULT_MAX_ENVELOPE

DATA = load_vector_file(PROJECT_VECTORS / "ota" / "scenarios.json")
COMP = (b"\x00",)


def _trust(spec: dict[str, Any]) -> TrustRoot | KeySet:
    if spec["type"] == "keys":
        return KeySet.of([decode_key(bytes.fromhex(k)) for k in spec["keys"]], spec["threshold"])  # type: ignore[misc]
    return TrustRoot.load(bytes.fromhex(spec["root"]))


def _step(up: Updater, step: dict[str, Any]) -> None:
    action = step["action"]
    if action == "apply":
        up.apply(bytes.fromhex(step["envelope"]), now=step["now"])
    elif action == "confirm":
        up.confirm((COMP,))
    elif action == "revert":
        up.revert((COMP,))
    else:
        assert isinstance(up.trust, TrustRoot)
        up.adopt_trust_root(up.trust.rotate(bytes.fromhex(step["root"]), now=step["now"]))


@pytest.mark.parametrize("group", DATA["testGroups"], ids=lambda g: g["scenario"])
def test_scenario(group: dict[str, Any], tmp_path: Path) -> None:
    device = FileSystemDevice(
        tmp_path / "device",
        vendor_id=uuid.UUID(group["device"]["vendor-id"]).bytes,
        class_id=uuid.UUID(group["device"]["class-id"]).bytes,
    )
    up = Updater(
        _trust(group["trust"]),
        FileStateStore(tmp_path / "state"),
        device,
        max_envelope=group.get("maxEnvelope", DEFAULT_MAX_ENVELOPE),
        max_seq_jump=group.get("maxSeqJump"),
    )
    for step in group["tests"]:
        before = up.store.load()
        if step["result"] == "valid":
            _step(up, step)
        else:
            with pytest.raises(error_class(step["error"])):
                _step(up, step)
            assert up.store.load() == before, f"tc {step['tcId']}: a rejection changed state"
        if "expectFloor" in step:
            assert up.store.load().component(component_key(COMP)).floor == step["expectFloor"]
