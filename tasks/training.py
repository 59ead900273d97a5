"""Training-run tasks: compute, the trainer and the grid monitor side by side, emissions."""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from carbonshift import scoring
from carbonshift.artifacts import artifact_key
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint import CheckpointManager, LocalStore, manager_for
from carbonshift.compute import LocalCompute
from carbonshift.config import TrainingConfig
from carbonshift.energy import Accounting, Sample, account, open_meter
from carbonshift.job import JobSpec, WorkGpuHours, WorkOnInstance
from carbonshift.monitor import Assessment, RunFacts, Watch
from carbonshift.plan import FeasiblePlan, NotRunnable, runnable
from carbonshift.planner import plan_jobs
from carbonshift.providers import ForecastUnavailable
from carbonshift.series import IntensitySeries, Signal
from carbonshift.training import Progress, TrainingContext, TrainingOutcome
from tasks.forecasts import chain_for
from tasks.planning import fetch_forecasts
from tasks.scheduling import reschedule_remaining


def compute_for(config: TrainingConfig) -> LocalCompute:
    return LocalCompute(Path(config.compute_state_dir))


def checkpoints_for(
    job: JobSpec, config: TrainingConfig, resume_from: str | None, run_id: str
) -> CheckpointManager:
    """A fresh run checkpoints under `<store>/<job>/<run id>`; a resumed run continues in the
    folder its `resume_from` checkpoint URI names (so yesterday's finished run never counts).
    Whether a checkpoint must be there is the trainer's call (TrainingContext.resume_from)."""
    if resume_from:
        return manager_for(resume_from, keep=config.keep_checkpoints)
    root = Path(config.checkpoint_store.removeprefix("file://")) / job.name
    return CheckpointManager(LocalStore(root), run_id, keep=config.keep_checkpoints)


@task(cache_policy=NO_CACHE)
def provision(run_id: str, plan: FeasiblePlan, config: TrainingConfig) -> str:
    instance = compute_for(config).provision(run_id, plan.chosen.region, plan.chosen.instance_type)
    get_run_logger().info(
        "provisioned %s (%s) for run %s", instance.handle, instance.provider, run_id
    )
    return instance.handle


@task(cache_policy=NO_CACHE)
def release(run_id: str, config: TrainingConfig) -> bool:
    released = compute_for(config).release(run_id)
    get_run_logger().info("released compute of run %s: %s", run_id, released)
    return released


def release_on_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation / on_crashed: runs in the worker's process, finds compute by run id."""
    raw = (flow_run.parameters or {}).get("config") or {}
    config = TrainingConfig.model_validate(raw)
    compute_for(config).release(str(flow_run.id))


class ProgressReporter:
    """Trainer progress into a Prefect progress artifact, at most every `every_s` seconds."""

    def __init__(self, job: str, every_s: float = 5.0) -> None:
        self.id = create_progress_artifact(
            0.0, key=artifact_key("progress", job), description=f"training progress of {job}"
        )
        self.every_s = every_s
        self.last = 0.0
        self.fraction = 0.0

    def __call__(self, progress: Progress) -> None:
        self.fraction = progress.fraction
        now = time.monotonic()
        if now - self.last >= self.every_s or progress.step == progress.total_steps:
            self.last = now
            update_progress_artifact(cast(UUID, self.id), round(100 * progress.fraction, 1))


def load_entrypoint(text: str) -> Any:
    module, sep, function = text.partition(":")
    if not sep:
        raise ValueError(
            f"entrypoint {text!r}: write module:function, e.g. "
            "carbonshift.examples.tiny_train:train"
        )
    return getattr(importlib.import_module(module), function)


EXIT_STOPPED = 3  # a command entrypoint that stopped cleanly at a checkpoint exits with this


@task(cache_policy=NO_CACHE)
def run_training(job: JobSpec, ctx: TrainingContext, done: threading.Event) -> TrainingOutcome:
    """Run the job's entrypoint — `module:function` (called with a TrainingContext) or a
    command (run with the checkpoint folder in its environment) — and signal `done`."""
    try:
        if not job.entrypoint:
            raise ValueError(
                f"job {job.name!r}: entrypoint: give module:function or a command "
                "to train with, e.g. carbonshift.examples.tiny_train:train"
            )
        if ":" in job.entrypoint and " " not in job.entrypoint.strip():
            outcome: TrainingOutcome = load_entrypoint(job.entrypoint)(ctx)
        else:
            outcome = run_command(job.entrypoint, ctx)
        get_run_logger().info(
            "training ended at step %d/%d (%s)",
            outcome.step,
            outcome.total_steps,
            "complete" if outcome.completed else outcome.stopped_reason,
        )
        return outcome
    finally:
        done.set()


def run_command(command: str, ctx: TrainingContext) -> TrainingOutcome:
    """A training command: stop means SIGTERM and a stop marker; the latest checkpoint says
    how far it got."""
    # The command may not use the Harness: the same resume rule is checked before it starts.
    ctx.checkpoints.resume_point(
        resume_from=ctx.resume_from, allow_fresh_start=ctx.allow_fresh_start
    )
    store = ctx.checkpoints.store
    root = store.uri.removeprefix("file://")
    env = {
        **os.environ,
        "CARBONSHIFT_CHECKPOINT_ROOT": root,
        "CARBONSHIFT_CHECKPOINT_PREFIX": ctx.checkpoints.prefix,
        "CARBONSHIFT_RESUME_FROM": ctx.resume_from or "",
        "CARBONSHIFT_ALLOW_FRESH_START": "1" if ctx.allow_fresh_start else "0",
        "CARBONSHIFT_CHECKPOINT_EVERY_S": f"{ctx.checkpoint_every_s:g}",
        **{f"CARBONSHIFT_{k.upper()}": v for k, v in ctx.options.items()},
    }
    ctx.checkpoints.clear_stop()
    proc = subprocess.Popen(shlex.split(command), env=env, stdin=subprocess.DEVNULL)
    stopped = False
    try:
        while proc.poll() is None:
            if ctx.stop.wait(1.0):
                ctx.checkpoints.request_stop("stop requested")
                proc.send_signal(signal.SIGTERM)
                stopped = True
                proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    latest = ctx.checkpoints.latest()
    step = int(latest.meta.get("step", 0)) if latest else 0
    total = int(latest.meta.get("total_steps", step)) if latest else 0
    # Our SIGTERM can land before the command installs its handler (it is still importing):
    # that is the stop we asked for, not a crash; it resumes from its last checkpoint, if any.
    stopped_early = stopped and proc.returncode == -signal.SIGTERM
    if proc.returncode not in (0, EXIT_STOPPED) and not stopped_early:
        raise RuntimeError(f"training command exited {proc.returncode}: {command}")
    completed = proc.returncode == 0
    return TrainingOutcome(
        completed,
        step,
        total,
        latest.uri if latest else None,
        None if completed else "stop requested",
    )


def planned_series(plan: FeasiblePlan) -> IntensitySeries | None:
    if plan.forecast is None:
        return None
    f = plan.forecast
    values = np.asarray(f.g_per_kwh, dtype=np.float64)
    return IntensitySeries(int(f.start.timestamp()), f.step_s, values, Signal(f.signal), f.source)


def actuals_fetcher(plan: FeasiblePlan, config: TrainingConfig) -> Any:
    chain = chain_for(config.forecast)
    region = default_catalog().region(plan.chosen.region)

    def fetch(start_s: float, end_s: float) -> IntensitySeries | None:
        try:
            return chain.actuals(
                region, datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
            ).series
        except ForecastUnavailable:
            return None

    return fetch


@task(cache_policy=NO_CACHE)
def watch_grid(
    job: JobSpec,
    plan: FeasiblePlan,
    config: TrainingConfig,
    run_id: str,
    started_s: float,
    stop: threading.Event,
    done: threading.Event,
    reporter: ProgressReporter,
    samples: list[Sample],
    meter: Any,
) -> Assessment | None:
    """Every interval: sample energy, read actual intensity, apply the rule; on a verdict to
    stop, ask the trainer to checkpoint and stop."""
    duration = plan.chosen.duration_s
    compute = compute_for(config)

    def facts() -> RunFacts:
        return RunFacts(
            started_s=started_s,
            deadline_s=plan.deadline.timestamp(),
            remaining_s=duration * (1 - reporter.fraction),
            resume_overhead_s=job.resume_overhead_s,
            replans=config.replans,
        )

    watch = Watch(
        planned=planned_series(plan),
        facts=facts,
        actuals=actuals_fetcher(plan, config),
        clock=time.time,
        wait=done.wait,
        rule=config.monitor,
        interrupted=lambda: compute.interrupted(run_id),
        on_tick=lambda now: samples.append(Sample(now, meter.read_j())),
    )
    verdict = watch.run()
    logger = get_run_logger()
    for a in watch.history:
        logger.info("monitor at +%.0f s: %s (%s)", a.at_s - started_s, a.verdict.value, a.reason)
    if verdict is not None:
        stop.set()
    return verdict


def emissions_markdown(
    job: str,
    plan: FeasiblePlan,
    acc: Accounting,
    meter_label: str,
    outcome: TrainingOutcome,
    verdict: Assessment | None,
) -> str:
    c = plan.chosen
    lines = [
        f"# {job}: energy and emissions",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| energy | {acc.energy_kwh:.4f} kWh |",
        f"| emissions (energy per interval x actual intensity) | {acc.emissions_kg:.4f} kg CO2 |",
        f"| same energy profile, started at once in {c.region} | {acc.counterfactual_kg:.4f} kg |",
        f"| saved | {acc.savings_kg:.4f} kg CO2 |",
        "",
        f"Meter: {meter_label}. Intensity used: {acc.intensity_source}. "
        f"Intervals: {acc.intervals}.",
        "",
        f"Training: step {outcome.step}/{outcome.total_steps}"
        f" ({'complete' if outcome.completed else outcome.stopped_reason}).",
    ]
    if verdict is not None:
        lines += ["", f"Stopped by the monitor: {verdict.reason}."]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def publish_emissions(
    job: JobSpec,
    plan: FeasiblePlan,
    samples: list[Sample],
    meter_label: str,
    outcome: TrainingOutcome,
    verdict: Assessment | None,
    config: TrainingConfig,
) -> Accounting:
    fetch = actuals_fetcher(plan, config)
    start, end = samples[0].at_s, samples[-1].at_s
    actual = fetch(start, max(end, start + 1))
    home = plan.explanation.now_home
    shift = plan.chosen.start.timestamp() - home.start.timestamp()
    acc = account(samples, actual, planned_series(plan), None, shift, home.mean_g_per_kwh)
    create_markdown_artifact(
        emissions_markdown(job.name, plan, acc, meter_label, outcome, verdict),
        key=artifact_key("emissions", job.name),
        description=f"energy and emissions of {job.name}",
    )
    return acc


def open_run_meter(plan: FeasiblePlan) -> Any:
    power_w = scoring.mean_power_w(plan.chosen.energy_kwh, plan.chosen.duration_s)
    return open_meter(
        power_w, time.time, plan.explanation.energy_estimate.split(" = ")[0], prefer_rapl=False
    )


def remaining_job(
    job: JobSpec, plan: FeasiblePlan, outcome: TrainingOutcome, now: datetime
) -> JobSpec:
    """The rest of the work, from now to the same deadline, plus one resume overhead."""
    left = 1.0 - outcome.fraction_done
    overhead_h = job.resume_overhead_s / 3600
    work: WorkOnInstance | WorkGpuHours
    if isinstance(job.work, WorkOnInstance):
        work = WorkOnInstance.model_validate(
            {
                "duration": job.work.duration_s * left + job.resume_overhead_s,
                "instance_type": job.work.instance_type,
            }
        )
    else:
        gpu = default_catalog().gpu(job.work.reference_gpu)
        itype = default_catalog().instance_type(plan.chosen.instance_type)
        extra = overhead_h * itype.throughput / gpu.throughput_factor
        work = WorkGpuHours(
            gpu_hours=job.work.gpu_hours * left + extra, reference_gpu=job.work.reference_gpu
        )
    return job.model_copy(
        update={
            "work": work,
            "earliest_start": now,
            "deadline": plan.deadline,
            "within_s": None,
            "urgent": False,
        }
    )


@task(cache_policy=NO_CACHE)
def replan_rest(
    job: JobSpec, plan: FeasiblePlan, outcome: TrainingOutcome, config: TrainingConfig, run_id: str
) -> tuple[bool, str]:
    """Plan the remaining work before the same deadline and schedule a run that resumes from
    the checkpoint; (scheduled?, what happened)."""
    now = datetime.now(UTC)
    rest = remaining_job(job, plan, outcome, now)
    forecasts = fetch_forecasts([rest], now, config.forecast)
    (new_plan,) = plan_jobs(
        [rest], {k: s.series for k, s in forecasts.items()}, now=now, catalog=default_catalog()
    )
    try:
        slot = runnable(new_plan)
    except NotRunnable as e:
        return False, f"could not re-plan: {e}; resume from {outcome.checkpoint_uri}"
    scheduled = reschedule_remaining(
        rest,
        slot,
        config.training_deployment,
        {
            "job": rest.model_dump(mode="json", by_alias=True),
            "plan": slot.model_dump(mode="json"),
            "resume_from": outcome.checkpoint_uri,
            "config": config.model_copy(update={"replans": config.replans + 1}).model_dump(
                mode="json"
            ),
        },
        key=f"carbonshift-{job.name}-resume-{run_id}",
    )
    return True, f"{scheduled.note}; run {scheduled.flow_run_id}"
