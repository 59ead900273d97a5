from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from carbonshift.catalog import Catalog, default_catalog
from carbonshift.series import IntensitySeries, Signal

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def make_series(
    values: Sequence[float],
    *,
    start: datetime = T0,
    step_s: int = 300,
    zone: str = "A",
    signal: Signal = Signal.LCA,
) -> IntensitySeries:
    return IntensitySeries(
        int(start.timestamp()), step_s, list(values), signal, f"test:{zone}", zone
    )  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()
