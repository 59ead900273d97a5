"""Shared by the flow tests: a registered (worker-less) train-model deployment and traces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@pytest.fixture(scope="session")
def deployment(prefect_server: None) -> Iterator[None]:
    """train-model/default on the test server, with no worker: scheduled runs stay scheduled."""
    from flows.train import train_model

    train_model.to_deployment(name="default").apply()
    yield


def write_trace(folder: Path, zone: str, low_hour: int, hours: int = 48) -> None:
    """A generic CSV: 300 g/kWh everywhere but one 50 g/kWh hour, `low_hour` after NOW."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,g_per_kwh"]
    for h in range(-2, hours):
        t = NOW + timedelta(hours=h)
        rows.append(f"{t.isoformat()},{50 if h == low_hour else 300}")
    (folder / f"{zone}_test.csv").write_text("\n".join(rows) + "\n")


