"""Atomic checkpoints: every part is written before the manifest that names it (with size and
sha256); a checkpoint without a valid manifest does not exist. The last `keep` are kept."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carbonshift.checkpoint.store import ObjectStore

log = logging.getLogger("carbonshift.checkpoint")

MANIFEST = "MANIFEST.json"
STOP_MARKER = "STOP"
_NAME = re.compile(r"ckpt-(\d{12})$")


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Checkpoint:
    step: int
    uri: str
    parts: Mapping[str, bytes]
    meta: Mapping[str, Any]


class CheckpointManager:
    def __init__(self, store: ObjectStore, prefix: str = "", keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.store = store
        self.prefix = prefix.strip("/")
        self.keep = keep

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri_of(self, step: int) -> str:
        return f"{self.store.uri}/{self._key(_folder(step))}"

    def save(self, step: int, parts: Mapping[str, bytes], meta: Mapping[str, Any]) -> str:
        """Write the parts, then the manifest; returns the checkpoint's URI."""
        folder = _folder(step)
        entries = {}
        for name, data in parts.items():
            self.store.put(self._key(folder, name), data)
            entries[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {"step": step, "parts": entries, "meta": dict(meta)}
        self.store.put(self._key(folder, MANIFEST), json.dumps(manifest, sort_keys=True).encode())
        self._prune()
        return self.uri_of(step)

    def steps(self) -> list[int]:
        """Steps that have a manifest (valid or not), newest first."""
        found = set()
        for key in self.store.list(self.prefix):
            head, _, name = key.rpartition("/")
            match = _NAME.search(head)
            if name == MANIFEST and match:
                found.add(int(match.group(1)))
        return sorted(found, reverse=True)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint whose parts all match their manifest; broken ones are skipped."""
        for step in self.steps():
            try:
                return self.load(step)
            except CheckpointError as e:
                log.warning("skipping checkpoint %d: %s", step, e)
        return None

    def load(self, step: int) -> Checkpoint:
        folder = _folder(step)
        try:
            manifest = json.loads(self.store.get(self._key(folder, MANIFEST)))
            parts = {}
            for name, entry in manifest["parts"].items():
                data = self.store.get(self._key(folder, name))
                if (
                    len(data) != entry["bytes"]
                    or hashlib.sha256(data).hexdigest() != entry["sha256"]
                ):
                    raise CheckpointError(
                        f"part {name} does not match its manifest (size or sha256)"
                    )
                parts[name] = data
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"unreadable: {e}") from e
        return Checkpoint(step, self.uri_of(step), parts, manifest.get("meta", {}))

    def request_stop(self, reason: str) -> None:
        self.store.put(self._key(STOP_MARKER), reason.encode())

    def stop_requested(self) -> bool:
        return self.store.exists(self._key(STOP_MARKER))

    def clear_stop(self) -> None:
        self.store.delete(self._key(STOP_MARKER))

    def _prune(self) -> None:
        for step in self.steps()[self.keep :]:
            folder = self._key(_folder(step))
            # The manifest goes first: a half-deleted checkpoint must not look complete.
            self.store.delete(f"{folder}/{MANIFEST}")
            for key in self.store.list(folder):
                self.store.delete(key)


def _folder(step: int) -> str:
    return f"ckpt-{step:012d}"
