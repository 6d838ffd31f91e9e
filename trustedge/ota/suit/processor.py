"""Run an authenticated manifest's command sequences against a :class:`Device`.

The processor interprets only :class:`~trustedge.ota.suit.auth.AuthenticatedManifest`
objects. Before each sequence the shared sequence runs (component index reset
to 0). Conditions that do not hold raise :class:`~trustedge.errors.PolicyError`
(vendor/class/slot: wrong device) or :class:`~trustedge.errors.VerificationError`
(image digest/size); ``try-each`` moves to the next branch on either, with the
parameters of the failed branch discarded. ``fetch`` and ``copy`` require an
image digest and size, stream at most ``image-size`` bytes into the target
slot, and commit the slot only when digest and size match -- so a device never
holds what the manifest does not name. ``invoke`` re-checks the image digest
first (time-of-check/time-of-use). ``use-before`` in the past raises
ExpiredError.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from trustedge.envelope import Identity
from trustedge.errors import ExpiredError, MalformedInputError, PolicyError, VerificationError
from trustedge.measuredboot.predict import MAX_IMAGE
from trustedge.ota._digest import digest_file, digest_stream, read_chunks
from trustedge.ota.device import Device
from trustedge.ota.model import decrypting, envelope_context
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.auth import AuthenticatedManifest
from trustedge.ota.suit.codec import Command, CommandSequence, Digest

__all__ = ["Processor"]

Mode = Literal["update", "boot"]


class Processor:
    """Runs sequences of one authenticated manifest on one device.

    ``payloads`` maps URIs to bytes given out of band (the envelope's
    integrated payloads, keyed ``#name``, are always available); anything
    else is fetched through :meth:`Device.fetch`. ``now`` (unix seconds)
    enables the ``use-before`` check. ``written`` records the slot each
    component index was written to. ``decrypt`` names components whose
    payloads must arrive as envelopes (:mod:`trustedge.ota.model`) and the
    identities that open them: a payload for such a component is decrypted
    while it streams, and a plaintext one is refused.
    """

    def __init__(
        self,
        auth: AuthenticatedManifest,
        device: Device,
        *,
        now: int | None = None,
        payloads: Mapping[str, bytes] | None = None,
        mode: Mode = "update",
        decrypt: Mapping[tuple[bytes, ...], Sequence[Identity]] | None = None,
    ) -> None:
        self.auth = auth
        self.decrypt = dict(decrypt or {})
        self.manifest = auth.manifest
        self.device = device
        self.now = now
        self.mode = mode
        self.payloads = {**dict(payloads or {}), **dict(auth.envelope.payloads)}
        self.params: dict[int, dict[int, Any]] = {}
        self.written: dict[int, int] = {}
        self._current: tuple[int, ...] = (0,)

    # -- sequences ---------------------------------------------------------------
    def run(self, key: int) -> None:
        """Run the shared sequence, then sequence ``key`` (e.g. ``numbers.INSTALL``).

        Raises MalformedInputError when the sequence is severed and was not
        supplied, or absent.
        """
        if key in self.manifest.severed:
            raise MalformedInputError(
                f"{n.SEQUENCE_NAMES.get(key, key)} is severed: supply the member to run it"
            )
        if key not in self.manifest.sequences:
            raise MalformedInputError(f"manifest has no {n.SEQUENCE_NAMES.get(key, key)} sequence")
        self._current = (0,)
        self._execute(self.manifest.shared_sequence)
        self._current = (0,)
        self._execute(self.manifest.sequences[key])

    def has(self, key: int) -> bool:
        return key in self.manifest.sequences or key in self.manifest.severed

    def _execute(self, seq: CommandSequence) -> None:
        for cmd in seq:
            self._command(cmd)

    def _command(self, cmd: Command) -> None:
        if cmd.id == n.DIR_SET_COMPONENT_INDEX:
            arg = cmd.arg
            if arg is True:
                self._current = tuple(range(len(self.manifest.components)))
            else:
                self._current = arg if isinstance(arg, tuple) else (arg,)
        elif cmd.id == n.DIR_OVERRIDE_PARAMETERS:
            for idx in self._current:
                self.params.setdefault(idx, {}).update(cmd.arg)
            self._check_use_before()
        elif cmd.id == n.DIR_TRY_EACH:
            self._try_each(cmd.arg)
        else:
            for idx in self._current:
                self._on_component(cmd, idx)

    def _try_each(self, branches: tuple[CommandSequence, ...]) -> None:
        last: VerificationError | None = None
        for branch in branches:
            saved = {k: dict(v) for k, v in self.params.items()}
            saved_current = self._current
            try:
                self._execute(branch)
                return
            except VerificationError as exc:
                self.params, self._current, last = saved, saved_current, exc
        raise PolicyError(f"no try-each branch applies ({last})")

    def _check_use_before(self) -> None:
        if self.now is None:
            return
        for params in self.params.values():
            limit = params.get(n.P_USE_BEFORE)
            if limit is not None and self.now > limit:
                raise ExpiredError(f"manifest may not be used after {limit}")

    # -- commands on one component --------------------------------------------------
    def _param(self, idx: int, key: int) -> Any:
        value = self.params.get(idx, {}).get(key)
        if value is None:
            raise PolicyError(f"parameter {n.PARAMETER_NAMES[key]} is not set for component {idx}")
        return value

    def _component(self, idx: int) -> tuple[bytes, ...]:
        return self.manifest.components[idx]

    def _read_slot(self, idx: int) -> int:
        slot = self.params.get(idx, {}).get(n.P_COMPONENT_SLOT)
        if slot is not None:
            return int(slot)
        if idx in self.written:
            return self.written[idx]
        comp = self._component(idx)
        if self.mode == "update":
            return self.device.target_slot(comp)
        return self.device.active_slot(comp)

    def _on_component(self, cmd: Command, idx: int) -> None:
        comp = self._component(idx)
        if cmd.id == n.COND_VENDOR_ID:
            self._match_id(self._param(idx, n.P_VENDOR_ID), self.device.vendor_id(comp), "vendor")
        elif cmd.id == n.COND_CLASS_ID:
            self._match_id(self._param(idx, n.P_CLASS_ID), self.device.class_id(comp), "class")
        elif cmd.id == n.COND_COMPONENT_SLOT:
            want = self._param(idx, n.P_COMPONENT_SLOT)
            have = (
                self.device.target_slot(comp)
                if self.mode == "update"
                else self.device.active_slot(comp)
            )
            if want != have:
                raise PolicyError(f"component slot {want} is not the device's slot {have}")
        elif cmd.id == n.COND_IMAGE_MATCH:
            self._image_match(idx)
        elif cmd.id == n.DIR_FETCH:
            uri = self._param(idx, n.P_URI)
            self._store(idx, self._fetch(uri))
        elif cmd.id == n.DIR_COPY:
            src = self._param(idx, n.P_SOURCE_COMPONENT)
            if src >= len(self.manifest.components) or src == idx:
                raise MalformedInputError("source-component is not another component")
            fh = self.device.read(self._component(src), self._read_slot(src))
            if fh is None:
                raise VerificationError(f"source component {src} is empty")
            with fh:
                self._store(idx, read_chunks(fh))
        elif cmd.id == n.DIR_INVOKE:
            self._image_match(idx)
            self.device.invoke(comp, self._read_slot(idx))
        else:  # pragma: no cover - the codec admits no other command
            raise MalformedInputError(f"unsupported command {cmd.id}")

    @staticmethod
    def _match_id(want: bytes, have: bytes, what: str) -> None:
        if not hmac.compare_digest(want, have):
            raise PolicyError(f"{what} id does not match this device")

    def _expected(self, idx: int) -> tuple[Digest, int]:
        return self._param(idx, n.P_IMAGE_DIGEST), self._param(idx, n.P_IMAGE_SIZE)

    def _image_match(self, idx: int) -> None:
        digest, size = self._expected(idx)
        fh = self.device.read(self._component(idx), self._read_slot(idx))
        if fh is None:
            raise VerificationError(f"component {idx} has no image to match")
        with fh:
            value, length = digest_file(fh, size)
        if length != size or not digest.matches(value):
            raise VerificationError(f"image of component {idx} does not match its digest/size")
        self._check_boot_measurement(idx)

    def _check_boot_measurement(self, idx: int, image: bytes | None = None) -> None:
        """A boot-chain component's stated measurement must be what its image
        measures: recomputed from the bytes, a mismatch refused."""
        bm = self.params.get(idx, {}).get(n.P_BOOT_MEASUREMENT)
        if bm is None:
            return
        if image is None:
            fh = self.device.read(self._component(idx), self._read_slot(idx))
            if fh is None:
                raise VerificationError(f"component {idx} has no image to measure")
            with fh:
                image = fh.read(MAX_IMAGE + 1)
        bm.check_image(image)

    def _fetch(self, uri: str) -> Iterable[bytes]:
        if uri in self.payloads:
            return [self.payloads[uri]]
        if uri.startswith("#"):
            raise MalformedInputError(f"integrated payload {uri!r} is missing")
        return self.device.fetch(uri)

    def _store(self, idx: int, chunks: Iterable[bytes]) -> None:
        digest, size = self._expected(idx)
        comp = self._component(idx)
        slot = self.params.get(idx, {}).get(n.P_COMPONENT_SLOT)
        slot = self.device.target_slot(comp) if slot is None else int(slot)
        identities = self.decrypt.get(comp)
        if identities is not None:
            # fetch -> authenticate (the envelope the manifest names) and decrypt, chunk
            # by chunk -> digest -> slot writer
            binding = self.params.get(idx, {}).get(n.P_ENVELOPE_BINDING)
            if binding is None:
                raise VerificationError(
                    f"component {idx} arrives encrypted but the manifest names no envelope "
                    "(trustedge-envelope-binding)"
                )
            chunks = decrypting(chunks, identities, context=envelope_context(comp), binding=binding)
        writer = self.device.open_writer(comp, slot)
        measured = n.P_BOOT_MEASUREMENT in self.params.get(idx, {})
        if measured and size > MAX_IMAGE:
            raise VerificationError(f"boot image of component {idx} larger than {MAX_IMAGE}")
        kept = bytearray()

        def sink(data: bytes) -> None:
            if measured:
                kept.extend(data)
            writer.write(data)

        try:
            value, length = digest_stream(chunks, size, sink)
            if length > size:
                raise VerificationError(f"payload for component {idx} exceeds image-size {size}")
            if length != size or not digest.matches(value):
                raise VerificationError(f"payload for component {idx} does not match its digest")
            # before the slot commits: what the image measures must be what the manifest says
            self._check_boot_measurement(idx, bytes(kept))
        except BaseException:
            writer.discard()
            raise
        writer.commit()
        self.written[idx] = slot
