"""The `plan` parameter of train-model is the plan union: its schema tells the kinds apart, and
every kind the planner returns passes the schema Prefect enforces (no server needed)."""

from __future__ import annotations

import json

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate

from carbonshift.catalog import default_catalog
from carbonshift.plan import PLANS
from carbonshift.planner import plan_jobs
from flows.train import train_model
from tests.helpers import T0, job, series_at

FORECASTS = {
    "aws:us-east-1": series_at([300] * 24),
    "aws:eu-west-2": series_at([100] * 24, zone="GB"),
}


def schema() -> dict[str, object]:
    return parameter_schema(train_model.fn).model_dump_for_openapi()


def test_the_plan_parameter_is_a_union_on_kind() -> None:
    plan = schema()["properties"]["plan"]  # type: ignore[index]
    assert plan["discriminator"]["propertyName"] == "kind"
    assert set(plan["discriminator"]["mapping"]) == {"feasible", "infeasible", "spread"}


@pytest.mark.parametrize(
    "spec",
    [
        job("one", regions=list(FORECASTS), within="2h"),
        job("late", within="5m"),
        job("spread", regions=list(FORECASTS), placement="spread", replicas=2, within="2h"),
    ],
    ids=["feasible", "infeasible", "spread"],
)
def test_every_kind_passes_the_parameter_schema(spec: object) -> None:
    (plan,) = plan_jobs([spec], FORECASTS, now=T0, catalog=default_catalog())  # type: ignore[list-item]
    given = json.loads(plan.model_dump_json())
    parameters = {"job": spec.model_dump(mode="json", by_alias=True), "plan": given}  # type: ignore[attr-defined]
    assert validate(parameters, schema(), raise_on_error=True) == []
    assert PLANS.validate_python(given) == plan


def test_a_plan_of_no_kind_fails_the_schema() -> None:
    (plan,) = plan_jobs([job("one", within="2h")], FORECASTS, now=T0, catalog=default_catalog())
    given = json.loads(plan.model_dump_json())
    given["kind"] = "maybe"
    spec = job("one", within="2h").model_dump(mode="json", by_alias=True)
    with pytest.raises(Exception, match="maybe|kind|valid"):
        validate({"job": spec, "plan": given}, schema(), raise_on_error=True)
