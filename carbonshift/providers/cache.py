"""Forecasts cached on disk, keyed by provider (name and address), zone, signal and 30-minute
bucket, each entry remembering the window it answered.

The cache is an optimisation: a folder that cannot be created, read or written (not a folder,
read-only, disk full) is reported once and then left alone, and an unreadable or implausible entry
(truncated, wrong types, NaN, from the future) is skipped with a warning. Neither ever fails a
forecast that a provider could give.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift.series import Fill, IntensitySeries, SeriesError, Signal
from carbonshift.units import to_epoch_s

log = logging.getLogger("carbonshift.providers")

BUCKET_S = 1800
ENV_CACHE_DIR = "CARBONSHIFT_CACHE_DIR"
FORMAT = 2  # entries without it (or with another) are skipped
# A year of 1-minute points is ~10 MB of JSON; an entry past this is not one of ours.
MAX_ENTRY_BYTES = 32 * 1024 * 1024


def default_cache_dir() -> Path:
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carbonshift" / "forecasts"


@dataclass(frozen=True)
class Cached:
    """A cached series, the request window `[window_start_s, window_end_s)` it answered (a
    provider may have had less: the series is what it gave), and when it was fetched."""

    series: IntensitySeries
    fetched_at: datetime
    age_s: float
    window_start_s: int
    window_end_s: int

    def covers(self, start_s: float, end_s: float) -> bool:
        """Whether this entry answers a request for `[start_s, end_s)`: the request lies inside
        the window it answered, and the series has data in it."""
        return (
            self.window_start_s <= start_s
            and end_s <= self.window_end_s
            and self.series.start_s < end_s
            and self.series.end_s > start_s
        )


class ForecastCache:
    """`ttl_s`: how long an entry is fresh. `max_stale_s`: how long a stale one may still serve
    when every provider is down. Only the series is stored: no request, header or credential,
    and the provider's address only as a digest (`cache_id`)."""

    def __init__(
        self,
        directory: Path,
        *,
        ttl_s: float = 1800.0,
        max_stale_s: float = 7 * 86400.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        write: Callable[[Path, str], None] | None = None,
    ) -> None:
        """`write(path, text)` stores one entry atomically (injected by tests: a full disk)."""
        self.directory = directory
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self._clock = clock
        self._write = write or write_atomically
        self._unusable = False  # warned once; the cache is then left alone

    def put(
        self,
        provider: str,
        cache_id: str,
        zone: str,
        series: IntensitySeries,
        window: tuple[int, int],
    ) -> Path | None:
        """Store `series` as the answer for the request `window`; None (and one warning per
        cache) if the folder cannot take it."""
        if self._unusable:
            return None
        now = self._clock()
        path = self._folder(provider, zone) / (
            f"{series.signal.value}-{_digest(cache_id)}-{to_epoch_s(now) // BUCKET_S}.json"
        )
        record = {
            "format": FORMAT,
            "provider": provider,
            "cache_id": _digest(cache_id),
            "zone": zone,
            "signal": series.signal.value,
            "source": series.source,
            "fetched_at": now.isoformat(),
            "window_start_s": int(window[0]),
            "window_end_s": int(window[1]),
            "start_s": series.start_s,
            "step_s": series.step_s,
            "g_per_kwh": series.g_per_kwh.tolist(),
            "fills": [[f.start_s, f.points] for f in series.fills],
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write(path, json.dumps(record, allow_nan=False))
        except OSError as e:
            self._give_up(e)
            return None
        return path

    def latest(
        self, provider: str, cache_id: str, zone: str, signal: Signal, start_s: float, end_s: float
    ) -> Cached | None:
        """The newest entry within `max_stale_s` that covers `[start_s, end_s)`, or None."""
        if self._unusable:
            return None
        folder = self._folder(provider, zone)
        digest = _digest(cache_id)
        try:
            entries = sorted(
                folder.glob(f"{signal.value}-{digest}-*.json"), key=_bucket, reverse=True
            )
        except OSError as e:
            self._give_up(e)
            return None
        now = self._clock()
        for path in entries:
            try:
                cached = _read(path, now, provider, digest, zone, signal)
            except (OSError, ValueError, KeyError, TypeError, OverflowError, SeriesError) as e:
                log.warning("ignoring unreadable cache entry %s: %s", path, e)
                continue
            if cached.age_s <= self.max_stale_s and cached.covers(start_s, end_s):
                return cached
        return None

    def is_fresh(self, cached: Cached) -> bool:
        return cached.age_s <= self.ttl_s

    def _folder(self, provider: str, zone: str) -> Path:
        return self.directory / _safe(provider) / _safe(zone)

    def _give_up(self, error: OSError) -> None:
        if not self._unusable:
            self._unusable = True
            log.warning(
                "forecast cache %s is unusable (%s); carrying on without it",
                self.directory,
                error.strerror or error,
            )


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file of this writer's own (two processes filling one bucket never
    share one), then rename: readers never see half a file, and a failed write leaves none."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(
    path: Path, now: datetime, provider: str, digest: str, zone: str, signal: Signal
) -> Cached:
    record: Any = json.loads(_read_entry(path).decode("utf-8"), parse_constant=_no_constant)
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    if record.get("format") != FORMAT:
        raise ValueError(f"format {record.get('format')!r}, expected {FORMAT}")
    expected = {"provider": provider, "cache_id": digest, "zone": zone, "signal": signal.value}
    for key, value in expected.items():
        if record[key] != value:
            raise ValueError(f"{key} is {record[key]!r}, expected {value!r}")
    fetched = datetime.fromisoformat(_text(record, "fetched_at"))
    if fetched.tzinfo is None:
        raise ValueError("fetched_at has no UTC offset")
    age = (now - fetched).total_seconds()
    if age < 0:
        raise ValueError(f"fetched_at {fetched.isoformat()} is in the future")
    values = record["g_per_kwh"]
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise TypeError("g_per_kwh is not a list of numbers")
    fills = record["fills"]
    if not isinstance(fills, list) or not all(
        isinstance(f, list) and len(f) == 2 and all(_is_int(x) for x in f) for f in fills
    ):
        raise TypeError("fills is not a list of [start_s, points] pairs")
    series = IntensitySeries(
        _int(record, "start_s"),
        _int(record, "step_s"),
        np.asarray(values, dtype=np.float64),
        signal,
        _text(record, "source"),
        zone,
        tuple(Fill(a, b) for a, b in fills),
    )
    window = (_int(record, "window_start_s"), _int(record, "window_end_s"))
    if window[1] <= window[0]:
        raise ValueError("the window ends before it starts")
    if series.start_s >= window[1] or series.end_s <= window[0]:
        raise ValueError("the series lies outside the window it answered")
    return Cached(series, fetched, age, *window)


def _read_entry(path: Path) -> bytes:
    """An entry's bytes, if it is a plain file of plausible size: a FIFO (which would block the
    read forever), a device or a symlink to one (`/dev/zero`: endless) is refused at once."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_ENTRY_BYTES:
            raise ValueError(f"{info.st_size} bytes, more than an entry ever holds")
        data = f.read(MAX_ENTRY_BYTES + 1)
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError("grew past the size an entry ever holds")
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} in a cache entry")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if not _is_int(value):
        raise TypeError(f"{key} is {value!r}, not an integer")
    result: int = value
    return result


def _text(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {value!r}, not text")
    return value


def _digest(cache_id: str) -> str:
    """The provider's identity (name, address, units) as a short digest: entries from two
    addresses never answer for each other, and no address (which may hold a password) is
    written to disk."""
    return hashlib.sha256(cache_id.encode("utf-8")).hexdigest()[:16]


def _safe(text: str) -> str:
    """A file name from any text; never empty, `.` or `..` (a zone is user input)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return name if name and not name.startswith(".") else "_" + name


def _bucket(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1
