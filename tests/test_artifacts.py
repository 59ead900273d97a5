"""Artifact content is built by pure functions; markdown, table and chart are snapshot-tested.
Set UPDATE_SNAPSHOTS=1 to rewrite the snapshots after a deliberate change, then review the diff."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.artifacts import (
    Scheduled,
    artifact_key,
    emissions_markdown,
    plan_markdown,
    plan_rows,
    plans_markdown,
    rows_as_text,
    svg_data_url,
)
from carbonshift.catalog import Catalog
from carbonshift.charts import plan_chart_svg
from carbonshift.ledger import Counterfactual, DeviceEnergy, Estimated, LedgerRecord
from carbonshift.plan import NotRunnable, Plan, runnable
from carbonshift.planner import plan_jobs
from carbonshift.training import TrainingOutcome
from tests.helpers import T0, job, series_at

SNAPSHOTS = Path(__file__).parent / "snapshots"


def snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def plans(catalog: Catalog) -> tuple[list[Plan], dict[str, object]]:
    east, london = "aws:us-east-1", "aws:eu-west-2"
    forecasts = {east: series_at([300, 280, 120, 100, 260, 300] * 2, step_min=60),
                 london: series_at([200, 90, 80, 210, 220, 230] * 2, step_min=60, zone="GB")}
    specs = [job("Nightly_Finetune", work={"duration": "2h", "instance_type": "g5.xlarge"},
                 within="10h", regions=[east, london]),
             job("too-late", within="5m")]
    return plan_jobs(specs, forecasts, now=T0, catalog=catalog), forecasts


@pytest.mark.parametrize(("prefix", "name", "key"), [
    ("plan", "Nightly Finetune", "plan-nightly-finetune"),
    ("plan-chart", "job_v2.1", "plan-chart-job-v2-1"),
    ("run", "--", "run"),
])
def test_keys_are_stable_lowercase_and_dashed(prefix: str, name: str, key: str) -> None:
    assert artifact_key(prefix, name) == key


def test_plan_table_rows(plans: tuple[list[Plan], dict[str, object]]) -> None:
    plan_list, _ = plans
    scheduled = {"Nightly_Finetune": Scheduled("Nightly_Finetune", "scheduled", "id-1",
                                               "http://ui/runs/flow-run/id-1")}
    rows = plan_rows(plan_list, scheduled)
    json.dumps(rows)  # Prefect needs JSON-serialisable table data
    assert rows[0]["region"] == "aws:eu-west-2"
    assert rows[0]["start_utc"] == f"{T0 + timedelta(hours=1):%Y-%m-%d %H:%M}"
    assert rows[0]["forecast_g_per_kwh"] == 85.0
    assert rows[0]["run"] == "http://ui/runs/flow-run/id-1"
    assert rows[1]["status"] == "not-scheduled" and "deadline" in str(rows[1]["run"])
    snapshot("plan_rows.json", json.dumps(rows, indent=1) + "\n")
    snapshot("plan_rows.txt", rows_as_text(rows) + "\n")


def test_plan_markdown(plans: tuple[list[Plan], dict[str, object]]) -> None:
    plan_list, _ = plans
    done = Scheduled("Nightly_Finetune", "scheduled", "id-1", "http://ui/runs/flow-run/id-1",
                     "for 2020-01-01 01:00 UTC")
    text = plan_markdown(plan_list[0], done, "plan-chart-nightly-finetune")
    assert "| chosen | aws:eu-west-2 |" in text and "| now, home region | aws:us-east-1 |" in text
    snapshot("plan_markdown.md", text)
    snapshot("plan_markdown_infeasible.md", plan_markdown(plan_list[1], None))


def test_one_explanation_artifact_holds_every_job_section(
    plans: tuple[list[Plan], dict[str, object]],
) -> None:
    plan_list, _ = plans
    done = {"Nightly_Finetune": Scheduled("Nightly_Finetune", "scheduled", "id-1", None, "ok")}
    text = plans_markdown(plan_list, done)
    assert text.startswith("# Plans of 2 jobs\n")
    for plan in plan_list:
        assert plan_markdown(plan, done.get(plan.job)) in text
    assert text.index("# Nightly_Finetune") < text.index("# too-late: not scheduled")
    assert "Forecast chart" not in text  # no per-job charts for a queue this size


def test_forecast_chart(plans: tuple[list[Plan], dict[str, object]]) -> None:
    plan_list, forecasts = plans
    svg = plan_chart_svg(forecasts, plan_list[0].chosen)  # type: ignore[arg-type]
    assert "<!-- aws:us-east-1 -->" in svg and "<!-- chosen run, aws:eu-west-2 -->" in svg
    snapshot("forecast_chart.svg", svg)
    url = svg_data_url(svg)
    assert base64.b64decode(url.split(",", 1)[1]).decode() == svg


def test_spread_plan_markdown_and_row_say_it_is_not_scheduled(catalog: Catalog) -> None:
    
    forecasts = {"aws:us-east-1": series_at([300] * 24),
                 "aws:eu-west-2": series_at([100] * 24, zone="GB"),
                 "aws:eu-central-1": series_at([50] * 12 + [200] * 12, zone="DE")}
    spec = job("spread-2", regions=list(forecasts), placement="spread", replicas=2,
               work={"duration": "30m", "instance_type": "g5.xlarge"}, within="2h")
    (plan,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    with pytest.raises(NotRunnable) as e:
        runnable(plan)
    refused = str(e.value)
    assert refused.startswith("placement: spread")
    done = Scheduled("spread-2", "not-scheduled", note=refused)
    (row,) = plan_rows([plan], {"spread-2": done})
    assert row["status"] == "not-scheduled" and row["run"] == refused
    assert "spread-2" in rows_as_text([row]) and refused in rows_as_text([row])
    snapshot("plan_markdown_spread.md", plan_markdown(plan, done))


def emissions_record(**changes: object) -> LedgerRecord:
    """A rescheduled segment: 0.15 kWh (PUE 1.1 included) on one estimated instance, two
    intervals on the forecast, the run-now counterfactual known and the best slot in hindsight
    too."""
    fields: dict[str, object] = {
        "run_id": "run-2", "job": "nightly", "job_id": "run-1", "previous_run_id": "run-1",
        "outcome": "rescheduled", "region": "aws:eu-north-1", "instance_type": "g5.xlarge",
        "submitted_at": T0, "planned_at": T0, "started_at": T0 + timedelta(minutes=90),
        "ended_at": T0 + timedelta(minutes=120), "steps_done": 1200, "total_steps": 3000,
        "energy_kwh": 0.15, "energy_measured": False, "pue": 1.1,
        "devices": [DeviceEnergy(device="instance", energy_kwh=0.15 / 1.1, measured=False,
                                 method="estimate: 1 x A10G 300 W")],
        "emissions_kg": 0.039, "mean_g_per_kwh": 260.0, "signal": "lca",
        "intervals": 6, "intervals_on_forecast": 2,
        "estimated": [Estimated(start=T0 + timedelta(minutes=110),
                                end=T0 + timedelta(minutes=120), source="forecast")],
        "counterfactuals": [
            Counterfactual(kind="run-now-home", region="aws:eu-west-2", start=T0,
                           emissions_kg=0.045, signal="lca"),
            Counterfactual(kind="best-in-hindsight", region="aws:eu-north-1",
                           start=T0 + timedelta(hours=3), emissions_kg=0.005, signal="lca"),
        ],
        "delay_s": 5400.0, "cost_usd": 0.5,
    }
    return LedgerRecord.model_validate({**fields, **changes})


def test_emissions_markdown() -> None:
    stopped = TrainingOutcome(False, 1200, 3000, "file:///c/ckpt-000000001200", "stop requested")
    text = emissions_markdown(emissions_record(), "estimate: 1 x A10G 300 W", stopped,
                              "actual 300 g/kWh is +200% above the forecast 100")
    assert ("| saved against starting at submission, location-based | 0.00600 kg CO2 (13.3%) |"
            in text)
    assert "| share of possible savings | 15% |" in text  # 0.006 of a possible 0.040
    assert "| delay against submission | 1 h 30 min |" in text
    assert "actual for 4 of 6 intervals that drew energy; 2 on the forecast" in text
    assert "step 1200/3000 (stop requested)" in text
    snapshot("emissions_markdown.md", text)
    done = TrainingOutcome(True, 3000, 3000, "file:///c/ckpt-000000003000")
    finished = emissions_markdown(emissions_record(outcome="completed"), "m", done, None)
    assert "Stopped by the monitor" not in finished and "(complete)" in finished


def test_emissions_markdown_pending_and_marginal() -> None:
    cf = emissions_record().counterfactuals
    pending = emissions_record(
        counterfactuals=[cf[0], cf[1].model_copy(update={"emissions_kg": None, "pending": True})],
        candidate_regions=["aws:us-east-1", "aws:eu-north-1"], deadline=T0 + timedelta(hours=6))
    done = TrainingOutcome(True, 3000, 3000, "file:///c/ckpt-000000003000")
    text = emissions_markdown(pending, "m", done, None)
    assert "| share of possible savings | pending |" in text
    # Pending, it names where and until when it is looked for, not a slot nobody found yet.
    assert "best slot in hindsight: aws:eu-north-1 at" not in text
    assert ("| counterfactual: best slot in hindsight, among aws:us-east-1, aws:eu-north-1 by "
            f"{T0 + timedelta(hours=6):%Y-%m-%d %H:%M} UTC | pending |") in text
    assert "completed by the report once actuals are published" in text
    none_possible = emissions_record(counterfactuals=[
        cf[0], cf[1].model_copy(update={"emissions_kg": 0.045})])
    assert "| share of possible savings | none possible" in emissions_markdown(
        none_possible, "m", done, None)
    moer = [c.model_copy(update={"signal": "moer", "emissions_kg": kg})
            for c, kg in zip(cf, (0.5, 0.2), strict=True)]
    marginal = emissions_record(counterfactuals=moer, marginal_emissions_kg=0.3,
                                avoided_marginal_kg=0.2)
    text = emissions_markdown(marginal, "m", done, None)
    snapshot("emissions_markdown_marginal.md", text)
    assert "| emissions, location-based (lca) | 0.0390 kg CO2 |" in text
    assert "avoided-emissions estimate (marginal, MOER) | 0.2000 kg CO2 (40.0%) |" in text
    assert "never added to it" in text


def test_emissions_markdown_counts_intervals_and_names_what_stood_in() -> None:
    record = emissions_record(
        intervals=5, intervals_on_forecast=1, intervals_on_fallback=2,
        estimated=[Estimated(start=T0 + timedelta(minutes=100), end=T0 + timedelta(minutes=105),
                             source="forecast"),
                   Estimated(start=T0 + timedelta(minutes=110), end=T0 + timedelta(minutes=120),
                             source="fallback")])
    text = emissions_markdown(record, "m", None, None)
    assert ("actual for 2 of 5 intervals that drew energy; 1 on the forecast, 2 on the fallback "
            "(the region's annual mean, no forecast either): 2020-01-01 01:40-01:45 UTC "
            "(forecast), 2020-01-01 01:50-02:00 UTC (fallback)") in text


def test_emissions_markdown_shows_embodied_emissions_apart() -> None:
    text = emissions_markdown(emissions_record(gpu_hours=2.0, embodied_kg=0.0207), "m", None,
                              None)
    assert "| embodied emissions, manufacturing (apart, not added) | 0.0207 kg CO2e |" in text
    assert "| emissions, location-based (lca) | 0.0390 kg CO2 |" in text  # not added to
    assert ("2.00 GPU-hours x 10.3 g CO2e per GPU-hour (Luccioni et al. 2023 (BLOOM: 11.2 t "
            "CO2eq over 1,082,990 A100 GPU-hours))") in text
    assert "embodied" not in emissions_markdown(emissions_record(), "m", None, None)


def test_device_rows_are_the_boards_before_pue_and_the_total_is_them_times_the_pue() -> None:
    gpus = [DeviceEnergy(device=f"GPU {i} NVIDIA H100", energy_kwh=0.4, measured=True,
                         method="NVML counter") for i in (0, 1)]
    text = emissions_markdown(emissions_record(devices=gpus, pue=1.25, energy_kwh=1.0,
                                               energy_measured=True), "m", None, None)
    rows = [line for line in text.splitlines() if line.startswith("| energy, ") or
            line.startswith("| PUE ")]
    assert rows == [
        "| energy, GPU 0 NVIDIA H100 (measured; board, before PUE) | 0.4000 kWh |",
        "| energy, GPU 1 NVIDIA H100 (measured; board, before PUE) | 0.4000 kWh |",
        "| PUE | 1.25 |",
        "| energy, total (PUE included) | 1.0000 kWh (measured) |",
    ]  # 2 x 0.4 kWh x 1.25 = 1.0 kWh
