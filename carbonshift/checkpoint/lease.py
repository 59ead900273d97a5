"""A writer lock on an object store: a lock object, created only if absent, holding its owner and
the time its lease ends; the holder renews it in the background while it holds it; another writer
takes it over only once the lease has ended (its holder died or lost its network).

Every write of the lock object is conditional on the version that was read (S3's ETag, GCS's
generation), so two writers racing for an expired lock cannot both win. Lease times are the
writers' wall clocks: they must agree to well within `renew_every_s` (NTP does)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from carbonshift.checkpoint.port import WriterBusy

log = logging.getLogger("carbonshift.checkpoint")

LEASE_ENV = "CARBONSHIFT_CHECKPOINT_LEASE_S"
DEFAULT_LEASE_S = 60.0
# Renewals come every third of the lease: below this, a busy host's late renewal loses the lock.
MIN_LEASE_S, MAX_LEASE_S = 10.0, 3600.0


def lease_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """The writer lease of object stores (S3, GCS): how long the lock of a writer that died
    outlives it, so how long a resumed run waits before it writes. CARBONSHIFT_CHECKPOINT_LEASE_S
    (seconds, 10 to 3600), else 60. Every process writing one folder (the flow's, the VMs')
    must use the same lease: a shorter one gives up waiting before a longer one ends."""
    text = environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_LEASE_S <= value <= MAX_LEASE_S:  # NaN fails too
        raise ValueError(
            f"{LEASE_ENV}={text!r}: give the writer lease in seconds, from {MIN_LEASE_S:g} to "
            f"{MAX_LEASE_S:g} (unset: {DEFAULT_LEASE_S:g})"
        )
    return value


class Conflict(Exception):
    """The object is not at the version the write was conditional on (or exists, on create)."""


class Versioned(Protocol):
    """Conditional writes of one object, as a store offers them."""

    def read(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version; None if absent."""
        ...

    def create(self, key: str, body: bytes) -> str:
        """Write if absent; returns the version. Conflict if present."""
        ...

    def replace(self, key: str, body: bytes, version: str) -> str:
        """Write if still at `version`; returns the new version. Conflict otherwise."""
        ...

    def remove(self, key: str, version: str) -> None:
        """Delete if still at `version`; nothing if it changed or went."""
        ...


def take(
    objects: Versioned,
    key: str,
    owner: str,
    *,
    lease_s: float,
    clock: Callable[[], float],
    renew_every_s: float | None = None,
) -> Lease:
    """The lock at `key`, or WriterBusy naming its holder while its lease lasts."""
    for _ in range(5):  # each pass loses only to a writer that changed the lock meanwhile
        body = _body(owner, clock() + lease_s)
        try:
            found = objects.read(key)
            if found is None:
                version = objects.create(key, body)
            else:
                holder, until_s = _parse(found[0])
                if until_s > clock():
                    raise WriterBusy(f"{holder} (lease until {_iso(until_s)})")
                version = objects.replace(key, body, found[1])
                log.warning("took over the writer lock %s: the lease of %s ended", key, holder)
        except Conflict:
            continue
        every_s = lease_s / 3 if renew_every_s is None else renew_every_s
        return Lease(objects, key, owner, version, lease_s, clock, every_s)
    raise WriterBusy("other writers (the lock changed on every attempt to take it)")


class Lease:
    """A held lock (carbonshift.checkpoint.store.WriterLock)."""

    def __init__(
        self,
        objects: Versioned,
        key: str,
        owner: str,
        version: str,
        lease_s: float,
        clock: Callable[[], float],
        renew_every_s: float,
    ) -> None:
        self._objects, self._key, self._owner = objects, key, owner
        self._version: str | None = version
        self._lease_s, self._clock = lease_s, clock
        self._until_s = clock() + lease_s
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if renew_every_s > 0:
            self._thread = threading.Thread(
                target=self._run, args=(renew_every_s,), name=f"lease {key}", daemon=True
            )
            self._thread.start()

    def renew(self) -> bool:
        """Extend the lease; False once it is lost (taken over) or released."""
        with self._mutex:
            if self._version is None:
                return False
            until_s = self._clock() + self._lease_s
            try:
                # Read first: the write is conditional on the version anyway, but a store that
                # did not enforce it (an emulator) would let a taken-over lock be stolen back.
                found = self._objects.read(self._key)
                if found is None or found[1] != self._version:
                    raise Conflict(self._key)
                self._version = self._objects.replace(
                    self._key, _body(self._owner, until_s), self._version
                )
            except Conflict:
                log.error("lost the writer lock %s: another writer took it over", self._key)
                self._version = None
                return False
            self._until_s = until_s
            return True

    def held(self) -> bool:
        """Whether this writer still holds the lock: a lease that ran out (the renewals failed,
        or the process was paused) is renewed now, which fails if another writer took it."""
        with self._mutex:
            if self._version is None:
                return False
            if self._clock() < self._until_s:
                return True
        return self.renew()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._mutex:
            version, self._version = self._version, None
        if version is not None:
            self._objects.remove(self._key, version)

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                if not self.renew():
                    return
            except Exception as e:  # the network: try again at the next tick
                log.warning("could not renew the writer lock %s: %s", self._key, e)


def _body(owner: str, until_s: float) -> bytes:
    return json.dumps({"owner": owner, "lease_until_s": until_s}).encode()


def _parse(raw: bytes) -> tuple[str, float]:
    """Holder and lease end; a lock nobody can read has no lease (it never blocks forever)."""
    with contextlib.suppress(ValueError, TypeError, KeyError):
        doc = json.loads(raw)
        return str(doc["owner"]), float(doc["lease_until_s"])
    return "an unreadable lock", float("-inf")


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat(timespec="seconds")
