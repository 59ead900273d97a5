"""Forecasts cached on disk, keyed by provider, zone, signal and 30-minute bucket."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from carbonshift.series import Fill, IntensitySeries, SeriesError, Signal
from carbonshift.units import to_epoch_s

log = logging.getLogger("carbonshift.providers")

BUCKET_S = 1800
ENV_CACHE_DIR = "CARBONSHIFT_CACHE_DIR"


def default_cache_dir() -> Path:
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carbonshift" / "forecasts"


@dataclass(frozen=True)
class Cached:
    series: IntensitySeries
    fetched_at: datetime
    age_s: float


class ForecastCache:
    """`ttl_s`: how long an entry is fresh. `max_stale_s`: how long a stale one may still serve
    when every provider is down. Only the series is stored: no request, header or credential."""

    def __init__(
        self,
        directory: Path,
        *,
        ttl_s: float = 1800.0,
        max_stale_s: float = 7 * 86400.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self._clock = clock

    def put(self, provider: str, zone: str, series: IntensitySeries) -> Path:
        now = self._clock()
        path = (
            self._folder(provider, zone)
            / f"{series.signal.value}-{to_epoch_s(now) // BUCKET_S}.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "provider": provider,
            "zone": zone,
            "signal": series.signal.value,
            "source": series.source,
            "fetched_at": now.isoformat(),
            "start_s": series.start_s,
            "step_s": series.step_s,
            "g_per_kwh": series.g_per_kwh.tolist(),
            "fills": [[f.start_s, f.points] for f in series.fills],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)  # readers never see half a file
        return path

    def latest(self, provider: str, zone: str, signal: Signal) -> Cached | None:
        """The newest entry within `max_stale_s`, or None."""
        folder = self._folder(provider, zone)
        entries = sorted(folder.glob(f"{signal.value}-*.json"), key=_bucket, reverse=True)
        now = self._clock()
        for path in entries:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                fetched = datetime.fromisoformat(record["fetched_at"])
                series = IntensitySeries(
                    int(record["start_s"]),
                    int(record["step_s"]),
                    np.asarray(record["g_per_kwh"], dtype=np.float64),
                    Signal(record["signal"]),
                    record["source"],
                    record["zone"],
                    tuple(Fill(int(a), int(b)) for a, b in record["fills"]),
                )
            except (OSError, ValueError, KeyError, TypeError, SeriesError) as e:
                log.warning("ignoring unreadable cache entry %s: %s", path.name, e)
                continue
            age = (now - fetched).total_seconds()
            return Cached(series, fetched, age) if age <= self.max_stale_s else None
        return None

    def is_fresh(self, cached: Cached) -> bool:
        return cached.age_s <= self.ttl_s

    def _folder(self, provider: str, zone: str) -> Path:
        return self.directory / _safe(provider) / _safe(zone)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _bucket(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1
