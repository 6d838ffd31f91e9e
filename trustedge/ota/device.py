"""The device side of an update: the :class:`Device` protocol and a file-system device.

:class:`FileSystemDevice` keeps each component under ``root/<component-hex>/``
with A/B slot files ``slot0``/``slot1`` and a small ``slots`` file naming the
active and the pending slot (written atomically). The processor writes a new
image through :meth:`Device.open_writer` into the *inactive* slot; nothing
becomes active before :meth:`Device.set_pending` and only stays active after
:meth:`Device.confirm`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from trustedge._fs import AtomicFile, atomic_write
from trustedge.errors import MalformedInputError, PolicyError

__all__ = ["Device", "FileSystemDevice", "SlotWriter"]


@runtime_checkable
class SlotWriter(Protocol):
    """A write into one slot that becomes visible only on :meth:`commit`."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


@runtime_checkable
class Device(Protocol):
    """What the SUIT processor needs from the device it updates."""

    def vendor_id(self, component: tuple[bytes, ...]) -> bytes: ...

    def class_id(self, component: tuple[bytes, ...]) -> bytes: ...

    def target_slot(self, component: tuple[bytes, ...]) -> int:
        """The slot an install writes to (the inactive one)."""
        ...

    def active_slot(self, component: tuple[bytes, ...]) -> int: ...

    def read(self, component: tuple[bytes, ...], slot: int) -> BinaryIO | None:
        """Open the image in ``slot`` for reading, or None when empty."""
        ...

    def open_writer(self, component: tuple[bytes, ...], slot: int) -> SlotWriter: ...

    def fetch(self, uri: str) -> Iterator[bytes]:
        """Stream the payload at ``uri`` (a callback: network, removable media...)."""
        ...

    def invoke(self, component: tuple[bytes, ...], slot: int) -> None: ...

    def set_pending(self, component: tuple[bytes, ...], slot: int) -> None:
        """Boot ``slot`` next time (test boot)."""
        ...

    def pending_slot(self, component: tuple[bytes, ...]) -> int | None:
        """The slot awaiting confirmation, or None."""
        ...

    def confirm(self, component: tuple[bytes, ...]) -> None:
        """Make the pending slot the active one for good."""
        ...

    def revert(self, component: tuple[bytes, ...]) -> None:
        """Drop the pending slot; the previous one stays active."""
        ...


class FileSystemDevice:
    """A :class:`Device` in a directory: components with A/B slot files.

    ``vendor_id``/``class_id`` are this device's 16-byte UUIDs (the same for
    every component); ``fetcher`` resolves URIs (None: fetching by URI fails);
    ``invoked`` collects (component, slot) pairs that were invoked.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        vendor_id: bytes,
        class_id: bytes,
        fetcher: Callable[[str], Iterator[bytes]] | None = None,
    ) -> None:
        self.root = Path(root)
        self._vendor = vendor_id
        self._class = class_id
        self._fetcher = fetcher
        self.invoked: list[tuple[tuple[bytes, ...], int]] = []

    def _dir(self, component: tuple[bytes, ...]) -> Path:
        d = self.root / "-".join(p.hex() or "_" for p in component)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _slots(self, component: tuple[bytes, ...]) -> dict[str, int | None]:
        path = self._dir(component) / "slots"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {"active": 0, "pending": None}
        except ValueError:
            raise MalformedInputError(f"corrupt slot file {path}") from None
        if not isinstance(data, dict) or data.get("active") not in (0, 1):
            raise MalformedInputError(f"corrupt slot file {path}")
        return {"active": data["active"], "pending": data.get("pending")}

    def _write_slots(self, component: tuple[bytes, ...], slots: dict[str, int | None]) -> None:
        # The slot file is the switch between A and B: one atomic, durable rename.
        atomic_write(self._dir(component) / "slots", json.dumps(slots).encode(), mode=0o644)

    def vendor_id(self, component: tuple[bytes, ...]) -> bytes:
        return self._vendor

    def class_id(self, component: tuple[bytes, ...]) -> bytes:
        return self._class

    def active_slot(self, component: tuple[bytes, ...]) -> int:
        slots = self._slots(component)
        pending = slots["pending"]
        return pending if pending is not None else int(slots["active"] or 0)

    def target_slot(self, component: tuple[bytes, ...]) -> int:
        return 1 - int(self._slots(component)["active"] or 0)

    @staticmethod
    def _check_slot(slot: int) -> None:
        if slot not in (0, 1):
            raise PolicyError(f"this device has slots 0 and 1, not {slot}")

    def read(self, component: tuple[bytes, ...], slot: int) -> BinaryIO | None:
        self._check_slot(slot)
        try:
            return open(self._dir(component) / f"slot{slot}", "rb")
        except FileNotFoundError:
            return None

    def open_writer(self, component: tuple[bytes, ...], slot: int) -> SlotWriter:
        self._check_slot(slot)
        # The image gets the slot's name only once complete and synced (trustedge._fs).
        return AtomicFile(self._dir(component) / f"slot{slot}", mode=0o644)

    def fetch(self, uri: str) -> Iterator[bytes]:
        if self._fetcher is None:
            raise MalformedInputError(f"no way to fetch {uri!r}: give the payload explicitly")
        return self._fetcher(uri)

    def invoke(self, component: tuple[bytes, ...], slot: int) -> None:
        self.invoked.append((component, slot))

    def set_pending(self, component: tuple[bytes, ...], slot: int) -> None:
        slots = self._slots(component)
        slots["pending"] = slot
        self._write_slots(component, slots)

    def pending_slot(self, component: tuple[bytes, ...]) -> int | None:
        pending = self._slots(component)["pending"]
        return None if pending is None else int(pending)

    def confirm(self, component: tuple[bytes, ...]) -> None:
        slots = self._slots(component)
        if slots["pending"] is not None:
            self._write_slots(component, {"active": slots["pending"], "pending": None})

    def revert(self, component: tuple[bytes, ...]) -> None:
        slots = self._slots(component)
        self._write_slots(component, {"active": slots["active"], "pending": None})
