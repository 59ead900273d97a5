"""Prefect events a team can hang automations on (docs/events.md): a plan made, a run started,
a forecast miss, a run rescheduled, a run finished with its emissions.

Each event's resource is the job, `carbonshift.job.<name>`; Prefect relates the flow run that
emitted it. Payloads are built by pure functions (tested without a server); the `emit_*`
helpers send them and never fail the flow (Prefect logs an event it could not send).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.events import Event, emit_event

from carbonshift.accounting import figures
from carbonshift.artifacts import placed, plan_figures
from carbonshift.monitor import Assessment, Verdict
from carbonshift.plan import FeasiblePlan, Plan, SpreadPlan
from carbonshift.run import Placement, RunReport

PLAN_MADE = "carbonshift.plan.made"
RUN_STARTED = "carbonshift.run.started"
FORECAST_MISS = "carbonshift.run.forecast-miss"
RUN_RESCHEDULED = "carbonshift.run.rescheduled"
RUN_FINISHED = "carbonshift.run.finished"

Payload = dict[str, Any]


def job_resource(job: str) -> dict[str, str]:
    return {"prefect.resource.id": f"carbonshift.job.{job}", "prefect.resource.name": job}


def plan_payload(plan: FeasiblePlan | SpreadPlan) -> Payload:
    f = plan_figures(plan)
    return {
        "region": f.regions,
        "instance_type": f.instance_type,
        "start": f.start.isoformat(),
        "end": f.end.isoformat(),
        "expected_kg": round(f.kg_co2, 6),
        "now_home_kg": round(f.now_home_kg_co2, 6),
        "forecast_g_per_kwh": round(f.g_per_kwh, 3),
        "forecast_source": f.source,
        "replicas": len(placed(plan)),
    }


def started_payload(placement: Placement, run_id: str, resume_from: str | None) -> Payload:
    slot = placement.slot
    return {
        "run_id": run_id,
        "region": slot.region,
        "instance_type": slot.instance_type,
        "planned_start": slot.start.isoformat(),
        "planned_end": slot.end.isoformat(),
        "deadline": placement.deadline.isoformat(),
        "expected_kg": round(slot.emissions_kg, 6),
        "resume_from": resume_from,
    }


def forecast_miss(report: RunReport) -> Assessment | None:
    """The monitor's stop for actual intensity above the forecast (not for an interruption,
    which stops a run with nothing compared), or None."""
    v = report.verdict
    if v is None or v.verdict is not Verdict.STOP or v.forecast_g_per_kwh is None:
        return None
    return v


def miss_payload(report: RunReport, miss: Assessment) -> Payload:
    return {
        "run_id": report.run_id,
        "region": report.region,
        "reason": miss.reason,
        "at_s": miss.at_s,
        "actual_g_per_kwh": miss.actual_g_per_kwh,
        "forecast_g_per_kwh": miss.forecast_g_per_kwh,
    }


def finished_payload(report: RunReport) -> Payload:
    """The run's figures as its ledger record states them (location-based emissions; the
    counterfactual on actual intensity, None while pending or not comparable)."""
    acc, o = report.accounting, report.outcome
    status = "failed" if o is None or report.error else "completed" if o.completed else "stopped"
    record = report.ledger
    if record is not None:
        f = figures(record)
        emitted = {
            "energy_kwh": record.energy_kwh,
            "emissions_kg": record.emissions_kg,
            "counterfactual_kg": f.run_now_kg,
            "saved_kg": f.saved_kg,
            "signal": f.signal,
            "counterfactual_pending": f.pending,
        }
    else:  # settling failed: the run's own accounting, no counterfactual claimed
        emitted = {
            "energy_kwh": acc.energy_kwh,
            "emissions_kg": acc.emissions_kg,
            "counterfactual_kg": None,
            "saved_kg": None,
            "signal": acc.signal,
            "counterfactual_pending": True,
        }
    return {
        "run_id": report.run_id,
        "region": report.region,
        "status": status,
        "step": o.step if o is not None else None,
        "total_steps": o.total_steps if o is not None else None,
        "stopped_by": report.stopped_by,
        "error": report.error,
        **emitted,
        "intensity_source": acc.intensity_source,
        "meter": report.meter_label,
    }


def emit_plans_made(plans: Sequence[Plan]) -> list[Event | None]:
    """One `carbonshift.plan.made` per job with a slot (a job not planned has no event)."""
    return [
        emit_event(PLAN_MADE, job_resource(plan.job), payload=plan_payload(plan))
        for plan in plans
        if isinstance(plan, FeasiblePlan | SpreadPlan)
    ]


def emit_run_started(placement: Placement, run_id: str, resume_from: str | None) -> Event | None:
    payload = started_payload(placement, run_id, resume_from)
    return emit_event(RUN_STARTED, job_resource(placement.job), payload=payload)


def emit_run_ended(report: RunReport) -> list[Event | None]:
    """The forecast miss that stopped the run, if one did, then the run's finish."""
    sent = []
    miss = forecast_miss(report)
    if miss is not None:
        payload = miss_payload(report, miss)
        sent.append(emit_event(FORECAST_MISS, job_resource(report.job), payload=payload))
    finished = finished_payload(report)
    sent.append(emit_event(RUN_FINISHED, job_resource(report.job), payload=finished))
    return sent


def emit_rescheduled(job: str, run_id: str, scheduled: bool, note: str) -> Event | None:
    """`carbonshift.run.rescheduled` when the rest of the job was scheduled; else nothing (the
    finish event already says the run stopped)."""
    if not scheduled:
        return None
    payload = {"run_id": run_id, "note": note}
    return emit_event(RUN_RESCHEDULED, job_resource(job), payload=payload)
