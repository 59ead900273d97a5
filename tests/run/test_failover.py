"""Capacity failover: the ranked options in order, each at most once, the deadline re-checked;
permission errors end it at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.compute import AccessDenied, CapacityError
from carbonshift.run import NoCapacity, Placement, with_failover
from tests.helpers import T0
from tests.run.fakes import placement, slot

NOW = T0 + timedelta(minutes=5)


def with_alternatives(*options: tuple[str, float], deadline_h: float = 12.0) -> Placement:
    base = placement(deadline_h=deadline_h)
    alternatives = [slot(region=r, hours=h) for r, h in options]
    return base.model_copy(update={"alternatives": alternatives})


def refusing(refused: set[str], tried: list[str]):  # type: ignore[no-untyped-def]
    def attempt(p: Placement) -> str:
        tried.append(p.slot.region)
        if p.slot.region in refused:
            raise CapacityError(p.slot.region, p.slot.instance_type, "InsufficientInstanceCapacity")
        return p.slot.region
    return attempt


def test_the_chosen_option_when_it_has_capacity() -> None:
    tried: list[str] = []
    where = with_alternatives(("aws:us-west-2", 1.0))
    assert with_failover(where, NOW, refusing(set(), tried)) == ("aws:eu-west-2", [])
    assert tried == ["aws:eu-west-2"]


def test_moves_to_the_next_ranked_option_starting_now_without_the_chosen_forecast() -> None:
    tried: list[str] = []
    seen: list[Placement] = []
    where = with_alternatives(("aws:us-west-2", 1.0), ("gcp:europe-west4", 1.0))

    def attempt(p: Placement) -> str:
        seen.append(p)
        return refusing({"aws:eu-west-2"}, tried)(p)

    region, refused = with_failover(where, NOW, attempt)
    assert region == "aws:us-west-2" and tried == ["aws:eu-west-2", "aws:us-west-2"]
    assert len(refused) == 1 and "InsufficientInstanceCapacity" in refused[0]
    moved = seen[1]
    assert moved.slot.start == NOW and moved.slot.end == NOW + timedelta(hours=1)
    assert moved.forecast is None and moved.alternatives == []
    assert moved.deadline == where.deadline and moved.explanation == where.explanation


def test_permission_errors_end_it_at_once() -> None:
    tried: list[str] = []

    def attempt(p: Placement) -> str:
        tried.append(p.slot.region)
        raise AccessDenied("ec2:RunInstances", "UnauthorizedOperation")

    with pytest.raises(AccessDenied, match="ec2:RunInstances"):
        with_failover(with_alternatives(("aws:us-west-2", 1.0)), NOW, attempt)
    assert tried == ["aws:eu-west-2"]


def test_an_option_too_long_for_the_deadline_is_skipped_and_named() -> None:
    tried: list[str] = []
    where = with_alternatives(("aws:us-west-2", 13.0), ("aws:us-east-2", 2.0), deadline_h=12.0)
    with pytest.raises(NoCapacity) as e:
        with_failover(where, NOW, refusing({"aws:eu-west-2", "aws:us-east-2"}, tried))
    assert tried == ["aws:eu-west-2", "aws:us-east-2"]
    assert e.value.too_late == ["aws:us-west-2 g5.xlarge"]
    assert [r.split(":")[0] + ":" + r.split(":")[1].split()[0] for r in e.value.refused] == [
        "aws:eu-west-2", "aws:us-east-2"]
    assert "aws:us-west-2 g5.xlarge" in str(e.value) and "deadline" in str(e.value)


@given(
    hours=st.lists(st.sampled_from([0.5, 1.0, 6.0, 11.9, 12.5]), min_size=0, max_size=5),
    refused_mask=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_the_first_option_that_fits_and_has_capacity_wins(
    hours: list[float], refused_mask: list[bool]
) -> None:
    regions = [f"aws:r{i}" for i in range(len(hours))]
    where = with_alternatives(*zip(regions, hours, strict=True), deadline_h=12.0)
    refused = {r for r, m in zip(["aws:eu-west-2", *regions], refused_mask, strict=False) if m}
    # Reference: every option in rank order; the chosen always fits (planned so).
    fits = [("aws:eu-west-2", True)] + [
        (r, NOW + timedelta(hours=h) <= where.deadline) for r, h in zip(regions, hours, strict=True)
    ]
    expected = next((r for r, ok in fits if ok and r not in refused), None)
    tried: list[str] = []
    if expected is None:
        with pytest.raises(NoCapacity):
            with_failover(where, NOW, refusing(refused, tried))
    else:
        assert with_failover(where, NOW, refusing(refused, tried))[0] == expected
    assert tried == [r for r, ok in fits if ok][: len(tried)]  # in rank order, each once
    assert len(tried) == len(set(tried))


def test_each_alternative_is_checked_against_the_deadline_when_it_is_reached() -> None:
    # Each refusal takes 40 minutes: the second alternative fitted when the run started
    # (T0+5m + 1h < T0+2h) but no longer does when its turn comes (T0+1h25m + 1h > T0+2h).
    where = with_alternatives(("aws:us-west-2", 1.0), ("aws:us-east-2", 1.0), deadline_h=2.0)
    clock = [NOW]
    tried: list[str] = []

    def slow_refusal(p: Placement) -> str:
        tried.append(p.slot.region)
        clock[0] += timedelta(minutes=40)
        raise CapacityError(p.slot.region, p.slot.instance_type, "InsufficientInstanceCapacity")

    with pytest.raises(NoCapacity) as error:
        with_failover(where, lambda: clock[0], slow_refusal)
    assert tried == [where.slot.region, "aws:us-west-2"]
    assert [t.split()[0] for t in error.value.too_late] == ["aws:us-east-2"]
    assert all(r.count("aws:") == 1 for r in error.value.refused)  # each label once
