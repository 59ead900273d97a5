"""Capacity failover: when the chosen (region, instance type) has no capacity or quota, the run
moves to the plan's next-ranked alternative that can still finish before the deadline. Errors
of credentials or permissions are not capacity: they end the run at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from carbonshift.compute import CapacityError
from carbonshift.run.placement import Placement

log = logging.getLogger("carbonshift.run")

T = TypeVar("T")


class NoCapacity(Exception):
    """Every option of the plan was refused for capacity, or is too late for the deadline."""

    def __init__(self, job: str, refused: list[str], too_late: list[str]) -> None:
        parts = [f"job {job!r}: no capacity for any planned option"]
        if refused:
            parts.append("refused: " + "; ".join(refused))
        if too_late:
            parts.append("too late for the deadline from now: " + ", ".join(too_late))
        super().__init__(". ".join(parts))
        self.refused = refused
        self.too_late = too_late


def _label(placement: Placement) -> str:
    return f"{placement.slot.region} {placement.slot.instance_type}"


Now = datetime | Callable[[], datetime]


def options(placement: Placement, now: Now) -> Iterator[Placement]:
    """The chosen placement, then each alternative moved to start now (a failover happens when
    the run starts) if it still ends by the deadline. `now` is a clock (or a fixed moment): a
    refused launch may take minutes, so each alternative starts when it is reached. The forecast
    was planned for the chosen region only, so a moved placement has none: its monitor checks
    actuals without a plan."""
    clock = now if callable(now) else (lambda: now)
    yield placement
    for slot in placement.alternatives:
        start = clock()
        moved = slot.model_copy(
            update={
                "start": start,
                "end": start + timedelta(seconds=slot.duration_s),
                "segments": [],
            }
        )
        yield placement.model_copy(update={"slot": moved, "forecast": None, "alternatives": []})


def with_failover(
    placement: Placement, now: Now, attempt: Callable[[Placement], T]
) -> tuple[T, list[str]]:
    """`attempt(p)` for the chosen placement, then for each alternative while the previous one
    raised CapacityError; (its result, the options refused before it). AccessDenied and every
    other error propagate at once."""
    refused: list[str] = []
    too_late: list[str] = []
    for option in options(placement, now):
        if option.slot.end > placement.deadline:
            too_late.append(_label(option))
            continue
        try:
            return attempt(option), refused
        except CapacityError as e:
            log.warning("%s: %s; trying the next planned option", _label(option), e)
            label = _label(option)
            refused.append(str(e) if str(e).startswith(label) else f"{label}: {e}")
    raise NoCapacity(placement.job, refused, too_late)
