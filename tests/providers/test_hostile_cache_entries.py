"""Cache entries that are not files: a FIFO where an entry should be blocked the forecast
forever; a symlink to /dev/zero would read without end. Each is skipped with a warning at once,
and a good entry next to them still serves."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from carbonshift.providers import ForecastCache
from carbonshift.providers.cache import MAX_ENTRY_BYTES
from carbonshift.series import IntensitySeries, Signal

NOW = datetime(2023, 6, 1, tzinfo=UTC)
START = int(NOW.timestamp())


def cache(tmp_path: Path) -> ForecastCache:
    return ForecastCache(tmp_path / "c", clock=lambda: NOW)


def stored(tmp_path: Path) -> tuple[ForecastCache, Path]:
    c = cache(tmp_path)
    series = IntensitySeries(START, 3600, np.full(6, 100.0), Signal.LCA, "live:x", "DE")
    path = c.put("electricitymaps", "id", "DE", series, (START, START + 6 * 3600))
    assert path is not None
    return c, path


def within(seconds: float, call: Callable[[], object]) -> object:
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the cache read blocked"
    return box[0]


def replace_with(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "dangling-link":
        os.symlink(path.with_name("nowhere"), path)
    elif kind == "oversized":
        with path.open("wb") as f:
            f.truncate(MAX_ENTRY_BYTES + 1)  # sparse: no disk used


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dangling-link", "oversized"])
def test_an_entry_that_is_not_a_plain_file_is_skipped_at_once(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    c, path = stored(tmp_path)
    replace_with(path, kind)
    found = within(10, lambda: c.latest("electricitymaps", "id", "DE", Signal.LCA, START,
                                        START + 3600))
    assert found is None
    assert "ignoring unreadable cache entry" in caplog.text


def test_a_good_entry_next_to_a_fifo_still_serves(tmp_path: Path) -> None:
    c, path = stored(tmp_path)
    os.mkfifo(path.with_name(path.stem.rsplit("-", 1)[0] + "-99999999.json"))  # a newer bucket
    found = within(10, lambda: c.latest("electricitymaps", "id", "DE", Signal.LCA, START,
                                        START + 3600))
    assert found is not None
