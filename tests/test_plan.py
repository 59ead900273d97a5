"""Plans are a sum type: each kind round-trips through JSON as itself, the CLI's record keeps
every key a plan has had, and only a single slot is runnable."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from carbonshift.catalog import Catalog
from carbonshift.plan import (
    PLANS,
    FeasiblePlan,
    InfeasiblePlan,
    NotRunnable,
    Plan,
    Slot,
    SpreadPlan,
    plan_record,
    runnable,
    trusted_slot,
)
from carbonshift.planner import plan_jobs
from tests.helpers import T0, job, series_at

EAST, LONDON, FRANKFURT = "aws:us-east-1", "aws:eu-west-2", "aws:eu-central-1"
FORECASTS = {
    EAST: series_at([300] * 24),
    LONDON: series_at([100] * 24, zone="GB"),
    FRANKFURT: series_at([50] * 12 + [200] * 12, zone="DE"),
}
OLD_KEYS = [
    "job",
    "feasible",
    "reason",
    "field",
    "chosen",
    "shards",
    "alternatives",
    "explanation",
    "deadline",
    "forecast",
]


def one_of_each(catalog: Catalog) -> dict[str, Plan]:
    specs = [
        job("one", regions=list(FORECASTS), within="2h"),
        job("late", within="5m"),
        job(
            "spread",
            regions=list(FORECASTS),
            placement="spread",
            replicas=2,
            within="2h",
            work={"duration": "30m", "instance_type": "g5.xlarge"},
        ),
        job("spread-1", regions=list(FORECASTS), placement="spread", replicas=1, within="2h"),
    ]
    plans = plan_jobs(specs, FORECASTS, now=T0, catalog=catalog)
    return {p.job: p for p in plans}


def test_the_planner_returns_each_kind(catalog: Catalog) -> None:
    plans = one_of_each(catalog)
    assert isinstance(plans["one"], FeasiblePlan)
    assert isinstance(plans["late"], InfeasiblePlan) and plans["late"].field == "deadline"
    assert isinstance(plans["spread"], SpreadPlan) and len(plans["spread"].shards) == 2
    assert [p.kind for p in plans.values()] == ["feasible", "infeasible", "spread", "spread"]


@pytest.mark.parametrize("name", ["one", "late", "spread"])
def test_each_kind_round_trips_through_json_as_itself(catalog: Catalog, name: str) -> None:
    plan = one_of_each(catalog)[name]
    back = PLANS.validate_json(plan.model_dump_json())
    assert type(back) is type(plan) and back == plan
    assert PLANS.validate_python(json.loads(plan.model_dump_json())) == plan


def test_a_plan_without_its_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="chosen"):
        PLANS.validate_python({"kind": "feasible", "job": "j", "alternatives": []})
    with pytest.raises(ValueError, match="kind"):
        PLANS.validate_python({"kind": "maybe", "job": "j"})


def test_the_record_keeps_every_old_key_and_adds_kind(catalog: Catalog) -> None:
    plans = one_of_each(catalog)
    for plan in plans.values():
        record = plan_record(plan)
        assert list(record) == [*OLD_KEYS, "kind"], plan.job
        json.dumps(record, allow_nan=False)
    one, late, spread = (plan_record(plans[n]) for n in ("one", "late", "spread"))
    assert one["feasible"] and one["shards"] == [] and one["reason"] == ""
    assert one["chosen"] == one["alternatives"][0]
    assert not late["feasible"] and late["chosen"] is None and late["explanation"] is None
    assert late["field"] == "deadline" and "deadline" in late["reason"]
    assert spread["feasible"] and spread["chosen"] == spread["shards"][0]
    assert spread["alternatives"] == spread["shards"] and len(spread["shards"]) == 2


def test_only_a_single_slot_is_runnable(catalog: Catalog) -> None:
    plans = one_of_each(catalog)
    assert runnable(plans["one"]) is plans["one"]
    with pytest.raises(NotRunnable, match="deadline"):
        runnable(plans["late"])
    with pytest.raises(NotRunnable, match="placement: spread plans are not scheduled"):
        runnable(plans["spread"])
    single = plans["spread-1"]
    assert isinstance(single, SpreadPlan)
    slot = runnable(single)  # one replica is one process: train-model runs it
    assert slot.chosen == single.shards[0] and slot.explanation == single.explanation
    assert slot.deadline == single.deadline and slot.forecast == single.forecast


@pytest.mark.parametrize("name", ["one", "late", "spread"])
def test_a_plan_written_before_kinds_still_loads_as_its_kind(catalog: Catalog, name: str) -> None:
    """Training runs scheduled before plans had a `kind` carry the old shape as a parameter."""
    plan = one_of_each(catalog)[name]
    old = json.loads(json.dumps(plan_record(plan)))
    del old["kind"]
    assert PLANS.validate_python(old) == plan


@pytest.mark.parametrize(
    "number",
    [3, np.float64(0.1), np.float32(0.1), np.int64(7), 1e-300],
    ids=["int", "float64", "float32", "int64", "tiny"],
)
def test_a_trusted_slot_is_the_validated_slot(number: object) -> None:
    # plan --json builds its slots without validation; they must equal and dump as validated ones.
    values: dict[str, Any] = {
        "region": EAST,
        "instance_type": "g5.xlarge",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "segments": [(T0, T0 + timedelta(hours=1))],
        "duration_s": number,
        "mean_g_per_kwh": number,
        "energy_kwh": number,
        "emissions_kg": number,
        "cost_usd": number,
        "objective": number,
        "source": "replay:test",
        "signal": "lifecycle",
        "coverage": number,
        "spot_price": "",
    }
    trusted, validated = trusted_slot(**values), Slot(**values)
    assert trusted == validated
    assert trusted.model_dump(mode="json") == validated.model_dump(mode="json")
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_copy(update={"region": LONDON}) == validated.model_copy(
        update={"region": LONDON}
    )
