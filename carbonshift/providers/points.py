"""Turn a provider's (time, value) points into a validated series, or a typed error."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from carbonshift.providers.base import ProviderBadResponse
from carbonshift.series import ALLOWED_STEPS_S, IntensitySeries, SeriesError, Signal

# A null or missing point between two good ones is filled (and recorded) up to this many steps.
FILL_UP_TO = 2


def series_from_points(
    provider: str,
    zone: str,
    points: Sequence[tuple[datetime, float | None]],
    *,
    signal: Signal,
    source: str,
    step_s: int | None = None,
) -> IntensitySeries:
    """Nulls are dropped (the series starts and ends with real values); short interior holes
    are filled by interpolation and recorded; anything else is a ProviderBadResponse."""
    known = [(t, v) for t, v in points if v is not None]
    if not known:
        raise ProviderBadResponse(provider, f"{zone}: the response holds no values (empty or null)")
    step_s = step_s or _step_with_nulls(points)
    if step_s is not None and step_s not in ALLOWED_STEPS_S:
        known, step_s = _split_steps(provider, zone, known, step_s)
    try:
        return IntensitySeries.from_points(
            [t for t, _ in known],
            [v for _, v in known],
            signal=signal,
            source=source,
            zone=zone,
            step_s=step_s,
            fill_gaps_up_to=FILL_UP_TO,
        )
    except SeriesError as e:
        raise ProviderBadResponse(provider, f"{zone}: {e}") from None


def _step_with_nulls(points: Sequence[tuple[datetime, float | None]]) -> int | None:
    """The interval of the raw points, nulls included: dropping nulls must not change it."""
    if len(points) < 2:
        return None
    diffs = sorted(
        int((b[0] - a[0]).total_seconds()) for a, b in zip(points, points[1:], strict=False)
    )
    return diffs[len(diffs) // 2] if diffs[len(diffs) // 2] > 0 else None


def clip(provider: str, series: IntensitySeries, start: datetime, end: datetime) -> IntensitySeries:
    """The part of `series` overlapping `[start, end)`; a forecast that stops short is returned
    as it is (the planner says how much of the window it covered)."""
    if series.start_s >= end.timestamp() or series.end_s <= start.timestamp():
        raise ProviderBadResponse(
            provider,
            f"{series.zone}: no data between {start.isoformat()} and {end.isoformat()} "
            f"(it has {series.start.isoformat()} to {series.end.isoformat()})",
        )
    return series.slice(start.timestamp(), end.timestamp())


def _split_steps(
    provider: str, zone: str, known: list[tuple[datetime, float]], step_s: int
) -> tuple[list[tuple[datetime, float]], int]:
    """10-minute (or 2-hour, ...) points become whole supported steps holding the same value."""
    finer = [a for a in ALLOWED_STEPS_S if step_s % a == 0]
    if not finer:
        raise ProviderBadResponse(
            provider, f"{zone}: {step_s}s points fit no 1, 5, 15, 30 or 60-minute grid"
        )
    target = max(finer)
    parts = step_s // target
    split = [(t + timedelta(seconds=target * k), v) for t, v in known for k in range(parts)]
    return split, target


def iso_seconds(moment: datetime) -> str:
    """UTC to the second with a `Z`, as the Electricity Maps and Carbon Aware SDK APIs take it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
