"""Atomic checkpoints: every part is written before the manifest that names it (with size and
sha256, and which parts a complete checkpoint needs); a checkpoint without a valid manifest does
not exist. One writer per run folder (a lock in the store); the last `keep` are kept.

Manifest (`MANIFEST.json`)::

    {"format": 2, "step": 42, "parts": {"model.pt": {"bytes": 10, "sha256": "<64 hex>"}},
     "required": ["model.pt"], "meta": {...}}
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from carbonshift.checkpoint.store import (
    ObjectStore,
    WriterBusy,
    WriterLock,
    owner_text,
    store_at,
)
from carbonshift.checkpoint.uri import parse_store_uri

log = logging.getLogger("carbonshift.checkpoint")

MANIFEST = "MANIFEST.json"
STOP_MARKER = "STOP"
WRITER_LOCK = ".writer.lock"
FORMAT = 2
_NAME = re.compile(r"ckpt-(\d{12,})$")  # 12 digits or more: no step is too large to find
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(Exception):
    pass


class WriterConflict(CheckpointError):
    """A second writer on a run folder that another writer holds."""


class NoCheckpointToResume(CheckpointError):
    """`resume_from` names a place with no valid checkpoint, and a fresh start was not allowed."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    uri: str
    parts: Mapping[str, bytes]
    meta: Mapping[str, Any]
    required: frozenset[str] = field(default_factory=frozenset)


class CheckpointManager:
    def __init__(
        self,
        store: ObjectStore,
        prefix: str = "",
        keep: int = 3,
        *,
        writer_wait_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`writer_wait_s`: how long the first save waits for a writer lock held by another
        writer (a resumed run whose predecessor died holding it waits for its lease to end)."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        if writer_wait_s < 0:
            raise ValueError("writer_wait_s must be >= 0")
        self.writer_wait_s, self._clock, self._sleep = writer_wait_s, clock, sleep
        self.store = store
        self.prefix = prefix.strip("/")
        self.keep = keep
        self._mutex = threading.RLock()  # one save at a time, whichever thread calls
        self._writer: WriterLock | None = None
        # The steps with a manifest, as this writer knows them: listed once when it starts
        # writing, then kept up to date by its own saves and prunes (nobody else writes here
        # while it holds the lock), so that a save does not list the run folder again.
        self._known: set[int] | None = None

    @property
    def uri(self) -> str:
        return f"{self.store.uri}/{self.prefix}" if self.prefix else self.store.uri

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri_of(self, step: int) -> str:
        return f"{self.store.uri}/{self._key(_folder(step))}"

    # -- writing -----------------------------------------------------------------------------

    def save(
        self,
        step: int,
        parts: Mapping[str, bytes],
        meta: Mapping[str, Any],
        required: Collection[str] | None = None,
    ) -> str:
        """Write the parts, then the manifest; returns the URI of the checkpoint, which exists.

        `required` names the parts a checkpoint is incomplete without (default: all of them).
        The first save takes the run folder's writer lock: a second writer gets WriterConflict.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step: {step!r} is not a whole number >= 0")
        if not parts:
            raise ValueError("parts: a checkpoint needs at least one part")
        for name in parts:
            _check_part_name(name)
        needed = sorted(parts if required is None else required)
        missing = set(needed) - set(parts)
        if missing:
            raise ValueError(f"required: parts {sorted(missing)} are required but not given")
        with self._mutex:
            self.acquire()
            self._check_held()
            if self._known is None:
                self._known = set(self.steps())
                self._sweep(self.prefix)  # what writers that died here left behind
            known = self._known
            folder = _folder(step)
            # A step written again is incomplete until its new manifest lands.
            self.store.delete(self._key(folder, MANIFEST))
            known.discard(step)
            # The manifest's SHA-256s are computed while the parts are being written (hashlib
            # lets go of the GIL), not after: one pass over the bytes, overlapped with the
            # upload, instead of a second pass that waits for it.
            hasher = ThreadPoolExecutor(1, thread_name_prefix="ckpt-sha256")
            try:
                digests = {name: hasher.submit(_sha256_hex, data) for name, data in parts.items()}
                for name, data in parts.items():
                    self.store.put(self._key(folder, name), data)
                entries = {
                    name: {"bytes": len(data), "sha256": digests[name].result()}
                    for name, data in parts.items()
                }
            finally:
                hasher.shutdown(wait=True, cancel_futures=True)
            manifest = {
                "format": FORMAT,
                "step": step,
                "parts": entries,
                "required": needed,
                "meta": dict(meta),
            }
            self._check_held()
            try:  # never over another writer's manifest (conditional write on S3 and GCS)
                self.store.create(
                    self._key(folder, MANIFEST), json.dumps(manifest, sort_keys=True).encode()
                )
            except FileExistsError:
                raise WriterConflict(
                    f"checkpoint {self.uri_of(step)} was committed by another writer meanwhile; "
                    "one writer per run folder"
                ) from None
            known.add(step)
            for key in self.store.list(self._key(folder)):
                if key.rpartition("/")[2] not in (*entries, MANIFEST):
                    self.store.delete(key)  # a part of an older checkpoint at this step
            self._prune(known, just_written=step)
            if not self.store.exists(self._key(folder, MANIFEST)):
                raise CheckpointError(f"checkpoint {self.uri_of(step)} vanished after writing")
            return self.uri_of(step)

    def acquire(self) -> None:
        """Take the run folder's writer lock (save does this on its first call)."""
        with self._mutex:
            if self._writer is not None:
                return
            deadline = self._clock() + self.writer_wait_s
            while True:
                try:
                    self._writer = self.store.lock(self._key(WRITER_LOCK), owner_text())
                    return
                except WriterBusy as e:
                    left_s = deadline - self._clock()
                    if left_s <= 0:
                        raise WriterConflict(
                            f"checkpoint folder {self.uri} is being written by {e}; "
                            "one writer per run folder: stop that run, or write to another "
                            "folder"
                        ) from None
                    log.info("waiting for the writer lock of %s, held by %s", self.uri, e)
                    self._sleep(min(1.0, left_s))

    def _check_held(self) -> None:
        """A writer whose lease ran out and was taken over must not write on."""
        if self._writer is not None and not self._writer.held():
            raise WriterConflict(
                f"lost the writer lock of {self.uri} to another writer (its lease ran out); "
                "this run must stop: the other writer continues"
            )

    def close(self) -> None:
        """Release the writer lock, if held."""
        with self._mutex:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            self._known = None  # another writer may come once the lock is let go

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Steps that have a manifest (valid or not), newest first."""
        found = set()
        for key in self.store.list(self.prefix):
            head, _, name = key.rpartition("/")
            match = _NAME.search(head)
            if name == MANIFEST and match and head.rpartition("/")[0] == self.prefix:
                found.add(int(match.group(1)))
        return sorted(found, reverse=True)

    def latest(self, required: Collection[str] = ()) -> Checkpoint | None:
        """The newest complete checkpoint (every part it declares required, and every part in
        `required`, present and matching size and sha256); others are skipped with a warning."""
        found, _ = self.scan(required)
        return found

    def latest_committed(self) -> tuple[int, str, Mapping[str, Any]] | None:
        """The newest checkpoint whose manifest is committed and whose parts are all there:
        (step, uri, meta), read from the manifests alone. For an observer (the flow of a remote
        run) that must not download a model of many GB to learn where to resume; the resuming
        trainer verifies sizes and sha256 (`latest`, `resume_point`)."""
        for step in self.steps():
            folder = _folder(step)
            try:
                manifest = _parse_manifest(self.store.get(self._key(folder, MANIFEST)), step)
                if all(self.store.exists(self._key(folder, n)) for n in manifest.parts):
                    return step, self.uri_of(step), manifest.meta
            except (OSError, ValueError, KeyError) as e:
                log.warning("skipping checkpoint %d in %s: %s", step, self.uri, e)
                continue
            log.warning("skipping checkpoint %d in %s: a part is missing", step, self.uri)
        return None

    def scan(self, required: Collection[str] = ()) -> tuple[Checkpoint | None, list[str]]:
        """The newest complete checkpoint, and why each newer one was skipped."""
        skipped: list[str] = []
        for step in self.steps():
            try:
                found = self.load(step)
                missing = set(required) - set(found.parts)
                if missing:
                    raise CheckpointError(f"lacks required part(s) {sorted(missing)}")
                return found, skipped
            except CheckpointError as e:
                log.warning("skipping checkpoint %d in %s: %s", step, self.uri, e)
                skipped.append(f"{_folder(step)}: {e}")
        return None, skipped

    def resume_point(
        self,
        required: Collection[str] = (),
        *,
        resume_from: str | None = None,
        allow_fresh_start: bool = False,
    ) -> Checkpoint | None:
        """Where to continue: the latest complete checkpoint. When `resume_from` was given and
        there is none, raise NoCheckpointToResume unless `allow_fresh_start`."""
        found, skipped = self.scan(required)
        if found is not None or not resume_from:
            return found
        what = "; ".join(skipped) if skipped else self._describe_empty()
        if not allow_fresh_start:
            raise NoCheckpointToResume(
                f"resume_from {resume_from}: no valid checkpoint in {self.uri} ({what}); "
                "give the URI of a valid checkpoint, or set allow_fresh_start: true to start "
                "at step 0"
            )
        log.warning(
            "resume_from %s: no valid checkpoint in %s (%s); starting at step 0 "
            "(allow_fresh_start)",
            resume_from,
            self.uri,
            what,
        )
        return None

    def _describe_empty(self) -> str:
        keys = self.store.list(self.prefix)
        return "no checkpoints there" if not keys else f"no checkpoints among {len(keys)} files"

    def load(self, step: int) -> Checkpoint:
        folder = _folder(step)
        try:
            manifest = _parse_manifest(self.store.get(self._key(folder, MANIFEST)), step)
            parts = {}
            for name, (size, sha256) in manifest.parts.items():
                data = self.store.get(self._key(folder, name))
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                    raise CheckpointError(
                        f"part {name} does not match its manifest (size or sha256)"
                    )
                parts[name] = data
        except FileNotFoundError as e:
            raise CheckpointError(f"a part is missing: {Path(str(e.filename)).name}") from e
        except (OSError, ValueError, KeyError) as e:
            raise CheckpointError(f"unreadable: {e}") from e
        return Checkpoint(step, self.uri_of(step), parts, manifest.meta, manifest.required)

    # -- stop marker -------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        self.store.put(self._key(STOP_MARKER), reason.encode())

    def stop_requested(self) -> bool:
        return self.store.exists(self._key(STOP_MARKER))

    def clear_stop(self) -> None:
        self.store.delete(self._key(STOP_MARKER))

    # -- pruning -----------------------------------------------------------------------------

    def _prune(self, known: set[int], just_written: int) -> None:
        """Keep the checkpoint just written and the `keep - 1` newest others, with whatever
        interrupted writes left in the folders removed."""
        others = sorted(known - {just_written}, reverse=True)
        for step in others[self.keep - 1 :]:
            folder = self._key(_folder(step))
            # The manifest goes first: a half-deleted checkpoint must not look complete.
            self.store.delete(f"{folder}/{MANIFEST}")
            known.discard(step)
            for key in self.store.list(folder):
                self.store.delete(key)
            self._sweep(folder)

    def _sweep(self, prefix: str) -> None:
        for key in self.store.sweep(prefix):
            log.info("removed %s, left by an interrupted write", key)


@dataclass(frozen=True)
class _Manifest:
    parts: dict[str, tuple[int, str]]
    required: frozenset[str]
    meta: dict[str, Any]


def _parse_manifest(raw: bytes, step: int) -> _Manifest:
    """A manifest, checked field by field; ValueError names what is wrong."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"manifest is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("manifest is not a JSON object")
    if doc.get("step") != step or isinstance(doc.get("step"), bool):
        raise ValueError(f"manifest step {doc.get('step')!r} is not its folder's step {step}")
    raw_parts = doc.get("parts")
    if not isinstance(raw_parts, dict) or not raw_parts:
        raise ValueError("manifest parts: must be a non-empty object of name -> {bytes, sha256}")
    parts: dict[str, tuple[int, str]] = {}
    for name, entry in raw_parts.items():
        _check_part_name(name)
        if not isinstance(entry, dict):
            raise ValueError(f"manifest part {name}: not an object")
        size, sha256 = entry.get("bytes"), entry.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"manifest part {name}: bytes {size!r} is not a size")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise ValueError(f"manifest part {name}: sha256 {sha256!r} is not 64 hex digits")
        parts[name] = (size, sha256)
    raw_required = doc.get("required", sorted(parts))  # format 1: every part it lists
    if not isinstance(raw_required, list) or not all(isinstance(r, str) for r in raw_required):
        raise ValueError("manifest required: must be a list of part names")
    missing = set(raw_required) - set(parts)
    if missing:
        raise ValueError(f"lacks required part(s) {sorted(missing)}")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("manifest meta: must be an object")
    return _Manifest(parts, frozenset(raw_required), meta)


def _check_part_name(name: object) -> None:
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or name in (MANIFEST, STOP_MARKER)
    ):
        raise ValueError(f"part name {name!r}: use a plain file name (no '/', not hidden)")


def takeover_wait_s(store: ObjectStore) -> float:
    """How long a resumed run waits for the lock of a writer that may have died holding it:
    the store's lease (an object store's lock outlives a killed holder that long), and a margin
    for the clocks. A folder's lock knows at once whether its holder lives."""
    lease_s = getattr(store, "lease_s", None)
    return float(lease_s) + 5.0 if isinstance(lease_s, int | float) else 0.0


def manager_for(
    uri: str, keep: int = 3, *, aws_session: Any = None, gcp_credentials: Any = None
) -> CheckpointManager:
    """The manager of the run folder a URI names (a folder, file://, s3:// or gs://): a
    checkpoint (`.../<run>/ckpt-<step>`, its run folder is used) or a run folder itself."""
    where = parse_store_uri(uri, field="resume_from")
    if where.scheme == "file":
        path = Path(where.path).absolute()
        if _NAME.search(path.name):
            path = path.parent
        parent, run = str(path.parent), path.name
    else:
        parent, _, run = where.path.rpartition("/")
        if _NAME.search(run):
            parent, _, run = parent.rpartition("/")
        if not run:
            raise ValueError(
                f"resume_from: {uri!r} names no run folder; give {where.scheme}://bucket/"
                "[prefix/]<run>[/ckpt-<step>]"
            )
    # Reading creates nothing: a resume_from that names nothing finds no checkpoint (and the
    # folder is made by the first save, if a fresh start was allowed).
    store = store_at(
        replace(where, path=parent),
        create=False,
        aws_session=aws_session,
        gcp_credentials=gcp_credentials,
    )
    return CheckpointManager(store, run, keep=keep, writer_wait_s=takeover_wait_s(store))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _folder(step: int) -> str:
    return f"ckpt-{step:012d}"
