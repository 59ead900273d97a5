"""The Prefect events a team hangs automations on: payloads checked by hand, then the events
emitted from a flow run and read back from the test server's events API, the job as resource
and the flow run related."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.events.filters import EventFilter, EventOccurredFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from prefect.runtime import flow_run

from carbonshift.catalog import Catalog
from carbonshift.energy import Accounting, Sample
from carbonshift.monitor import Assessment, Verdict
from carbonshift.plan import FeasiblePlan, Plan
from carbonshift.planner import plan_jobs
from carbonshift.run import Placement, RunReport, placement_of
from carbonshift.training import TrainingOutcome
from tasks.events import (
    FORECAST_MISS,
    PLAN_MADE,
    RUN_FINISHED,
    RUN_RESCHEDULED,
    RUN_STARTED,
    emit_plans_made,
    emit_rescheduled,
    emit_run_ended,
    emit_run_started,
    finished_payload,
    forecast_miss,
    job_resource,
    plan_payload,
)
from tests.helpers import T0, job, series_at

EAST, LONDON = "aws:us-east-1", "aws:eu-west-2"
MISS = Assessment(Verdict.STOP, "actual 150 g/kWh is +50% above the forecast 100",
                  (T0 + timedelta(minutes=20)).timestamp(), 150.0, 100.0)
NOTICE = Assessment(Verdict.STOP, "the instance was interrupted (spot notice or loss)",
                    (T0 + timedelta(minutes=20)).timestamp())


def plans_for(name: str, catalog: Catalog) -> list[Plan]:
    forecasts = {EAST: series_at([300, 280, 120, 100, 260, 300] * 2, step_min=60),
                 LONDON: series_at([200, 90, 80, 210, 220, 230] * 2, step_min=60, zone="GB")}
    specs = [job(name, work={"duration": "2h", "instance_type": "g5.xlarge"}, within="10h",
                 regions=[EAST, LONDON]),
             job(f"{name}-too-late", within="5m")]
    return plan_jobs(specs, forecasts, now=T0, catalog=catalog)


def report(name: str, verdict: Assessment | None, completed: bool = False) -> RunReport:
    outcome = TrainingOutcome(completed, 3000 if completed else 1200, 3000, "file:///c/ckpt",
                              "" if completed else "stop requested")
    return RunReport(
        job=name, run_id="run-1", region=LONDON, instance="i-1", outcome=outcome,
        verdict=verdict, history=[verdict] if verdict else [],
        samples=[Sample(T0.timestamp(), 0.0), Sample((T0 + timedelta(hours=1)).timestamp(), 9e5)],
        meter_label="estimate: 1 x A10G 300 W",
        accounting=Accounting(0.25, 0.02, 0.075, "actual", 12), released=True)


def test_plan_payload_is_the_plans_figures(catalog: Catalog) -> None:
    plan = plans_for("nightly", catalog)[0]
    assert isinstance(plan, FeasiblePlan)
    payload = plan_payload(plan)
    # London's 90 and 80 g/kWh hours, from 01:00: the figures the plan table shows.
    assert payload["region"] == LONDON and payload["start"] == (T0 + timedelta(hours=1)).isoformat()
    assert payload["expected_kg"] == pytest.approx(plan.chosen.emissions_kg)
    assert payload["forecast_g_per_kwh"] == 85.0 and payload["replicas"] == 1


def test_a_forecast_miss_is_a_stop_with_a_comparison_not_an_interruption() -> None:
    assert forecast_miss(report("j", MISS)) == MISS
    assert forecast_miss(report("j", NOTICE)) is None  # stopped, but nothing was compared
    assert forecast_miss(report("j", None, completed=True)) is None
    halted = Assessment(Verdict.HALT, "limit", MISS.at_s, 150.0, 100.0)
    assert forecast_miss(report("j", halted)) is None


@pytest.mark.parametrize(("verdict", "completed", "status"), [
    (None, True, "completed"), (MISS, False, "stopped")])
def test_finished_payload_carries_the_emissions(verdict: Assessment | None, completed: bool,
                                                status: str) -> None:
    payload = finished_payload(report("j", verdict, completed))
    assert payload["status"] == status
    assert (payload["energy_kwh"], payload["emissions_kg"]) == (0.25, 0.02)
    # No ledger record (settling failed): no counterfactual is claimed; the forecast-based
    # figure of the run's own accounting is never passed off as a saving.
    assert payload["saved_kg"] is None and payload["counterfactual_pending"]
    from datetime import UTC, datetime

    from carbonshift.ledger import Counterfactual, LedgerRecord

    t = datetime(2026, 12, 1, tzinfo=UTC)
    record = LedgerRecord(
        run_id="r", job="j", job_id="r", outcome="completed", region="aws:eu-west-2",
        instance_type="g5.xlarge", started_at=t, ended_at=t, energy_kwh=0.25,
        energy_measured=False, emissions_kg=0.02, mean_g_per_kwh=80, signal="lca",
        counterfactuals=[Counterfactual(kind="run-now-home", region="aws:us-east-1", start=t,
                                        emissions_kg=0.075, signal="lca")])
    settled = finished_payload(report("j", verdict, completed).model_copy(
        update={"ledger": record}))
    assert settled["saved_kg"] == pytest.approx(0.055)  # the ledger's, on actual intensity
    assert settled["counterfactual_kg"] == pytest.approx(0.075)
    assert not settled["counterfactual_pending"]
    assert payload["stopped_by"] == (verdict.reason if verdict else None)


def test_a_failed_run_finishes_failed() -> None:
    failed = report("j", None).model_copy(update={"outcome": None, "error": "training failed"})
    assert finished_payload(failed)["status"] == "failed"
    assert finished_payload(failed)["step"] is None


def read_back(resource_id: str, count: int, timeout_s: float = 30.0) -> list[Event]:
    """The events of `resource_id` once the server has `count` of them (they travel through
    the client's events worker and the server's event pipeline)."""
    EventsWorker.drain_all()
    since = T0.replace(year=2000)
    event_filter = EventFilter(occurred=EventOccurredFilter(since=since),
                               resource=EventResourceFilter(id=[resource_id]))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=event_filter, limit=50).events
            if len(events) >= count or time.monotonic() > deadline:
                return sorted(events, key=lambda e: e.occurred)
            time.sleep(0.2)


@pytest.mark.integration
def test_events_reach_the_server_with_the_job_and_the_flow_run(prefect_server: None,
                                                               catalog: Catalog) -> None:
    name = f"events-{uuid.uuid4().hex[:8]}"
    plans = plans_for(name, catalog)
    placement: Placement = placement_of(plans[0])

    @flow(name="emit-carbonshift-events")
    def emitting() -> str:
        emit_plans_made(plans)  # the job that could not be planned has no event
        emit_run_started(placement, "run-1", None)
        emit_run_ended(report(name, MISS))
        emit_rescheduled(name, "run-1", True, "scheduled for 2020-01-01 05:00 UTC; run abc")
        emit_rescheduled(name, "run-1", False, "could not re-plan")  # nothing to announce
        return str(flow_run.get_id())

    run_id = emitting()
    events = read_back(job_resource(name)["prefect.resource.id"], 5)
    assert [e.event for e in events] == [PLAN_MADE, RUN_STARTED, FORECAST_MISS, RUN_FINISHED,
                                         RUN_RESCHEDULED]
    assert all(e.resource.name == name for e in events)
    assert all(f"prefect.flow-run.{run_id}" in {r.id for r in e.related} for e in events)
    made, started, miss, finished, rescheduled = (e.payload for e in events)
    assert made["region"] == LONDON and made["expected_kg"] == pytest.approx(
        plans[0].chosen.emissions_kg)  # type: ignore[union-attr]
    assert started["run_id"] == "run-1" and started["region"] == LONDON
    assert miss["actual_g_per_kwh"] == 150.0 and miss["forecast_g_per_kwh"] == 100.0
    assert finished["emissions_kg"] == 0.02 and finished["status"] == "stopped"
    assert rescheduled["note"].endswith("run abc")
    assert read_back(f"carbonshift.job.{name}-too-late", 0, timeout_s=0) == []
