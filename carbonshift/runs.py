"""One training run from its configuration: the planned option first, the next-ranked ones when
a provider has no capacity (carbonshift.run.failover), each supervised on the compute of its
region. On local compute the trainer runs in this process; on a cloud the VM runs it (the agent)
and a RemoteTrainer follows it through the checkpoint store, so the monitor, the stop and the
re-plan are the same everywhere. No orchestrator in here: the flow's task calls `run_training`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from carbonshift.catalog import Catalog, Region
from carbonshift.compute import Compute
from carbonshift.config import TrainingConfig
from carbonshift.energy import EnergyMeter
from carbonshift.job import JobSpec
from carbonshift.meters import close_meter
from carbonshift.meters.nvml import NvmlLike
from carbonshift.remote import MeterSpec, RemoteCompute, RemoteTrainer, spec_for
from carbonshift.run import (
    ActualIntensity,
    Clock,
    Placement,
    RunReport,
    Supervisor,
    SystemClock,
    Trainer,
    checkpoints_for,
    run_meter,
    trainer_for,
    with_failover,
)
from carbonshift.run.placement import estimate_label
from carbonshift.training import Progress, TrainingContext


@dataclass(frozen=True)
class CloudAccess:
    """Credentials resolved by the caller (from Prefect blocks); None: the SDKs' default chains."""

    aws_session: Any = None
    gcp_credentials: Any = None


@dataclass
class RunInputs:
    job: JobSpec
    placement: Placement
    run_id: str
    resume_from: str | None
    config: TrainingConfig
    catalog: Catalog
    actuals_for: Callable[[Region], ActualIntensity]
    on_progress: Callable[[Progress], None] | None = None
    access: CloudAccess = field(default_factory=CloudAccess)
    clock: Clock = field(default_factory=SystemClock)


class ReleaseFailed(RuntimeError):
    """Some regions could not be asked to release a run; the others were."""

    def __init__(self, run_id: str, released: list[str], errors: list[str]) -> None:
        super().__init__(
            f"run {run_id}: could not release in {'; '.join(errors)} (released in "
            f"{', '.join(released) or 'none'}); the reaper will find what is left"
        )
        self.released, self.errors = released, errors


def compute_for(config: TrainingConfig, region: str, access: CloudAccess) -> Compute:
    return config.compute.compute_for(
        region, aws_session=access.aws_session, gcp_credentials=access.gcp_credentials
    )


def regions_of(placement: Placement) -> list[str]:
    """Every region a run of this placement may have launched in (its failover options)."""
    regions = [placement.slot.region, *(s.region for s in placement.alternatives)]
    return list(dict.fromkeys(regions))


def release_everywhere(
    config: TrainingConfig, placement: Placement | None, run_id: str, access: CloudAccess
) -> list[str]:
    """Release what `run_id` holds in every region it may have launched in (a cancelled or
    crashed run's hook; `placement` None: a plan that could not run, or none at all); the
    regions where something was released."""
    if not config.compute.remote_runs:
        regions = ["local"]  # one state folder, whatever the region
    else:
        regions = regions_of(placement) if placement is not None else []
    released, errors = [], []
    for region in regions:  # every region, whatever fails in one: the run may be in the next
        try:
            if compute_for(config, region, access).release(run_id):
                released.append(region)
        except Exception as e:  # noqa: BLE001 - collected, raised once all were asked
            errors.append(f"{region}: {type(e).__name__}: {e}")
    if errors:
        raise ReleaseFailed(run_id, released, errors)
    return released


def run_training(inputs: RunInputs) -> RunReport:
    """Supervise the run on the chosen option, or on the next one with capacity; the report
    lists the options refused before it (NoCapacity when every one was)."""
    inputs.config.check_reachable_store()
    report, refused = with_failover(
        inputs.placement,
        lambda: datetime.fromtimestamp(inputs.clock.now(), UTC),
        lambda p: _run(inputs, p),
    )
    return report.model_copy(update={"refused": refused}) if refused else report


def _run(inputs: RunInputs, placement: Placement) -> RunReport:
    config = inputs.config
    ctx = TrainingContext(
        checkpoints_for(
            config.checkpoint_store,
            inputs.job.name,
            inputs.run_id,
            inputs.resume_from,
            config.keep_checkpoints,
            # The flow reads and writes the store as the run's credentials (a Prefect block,
            # say); the instance uses its own role.
            aws_session=inputs.access.aws_session,
            gcp_credentials=inputs.access.gcp_credentials,
        ),
        on_progress=inputs.on_progress,
        checkpoint_every_s=config.checkpoint_every_s,
        options=config.options,
        resume_from=inputs.resume_from,
        allow_fresh_start=config.allow_fresh_start,
    )
    region = inputs.catalog.region(placement.slot.region)
    compute = compute_for(config, placement.slot.region, inputs.access)
    trainer: Trainer
    meter: EnergyMeter
    if config.compute.remote_runs:
        remote = _remote_trainer(inputs, placement, ctx, region)
        compute = RemoteCompute(compute, remote, config.compute.bootstrap)
        trainer, meter = remote, remote.meter
        stop_grace_s = config.compute.remote.stop_grace_s
    else:
        trainer = trainer_for(inputs.job.name, inputs.job.entrypoint)
        meter = local_meter(config, inputs.catalog, placement, inputs.clock.now)
        stop_grace_s = 120.0
    try:
        supervisor = Supervisor(
            compute=compute,
            meter=meter,
            actuals=inputs.actuals_for(region),
            clock=inputs.clock,
            rule=config.monitor,
            stop_grace_s=stop_grace_s,
            # A run moved by failover has no forecast of its region: where actuals are missing
            # too, its own region's annual mean, not the home region's forecast.
            fallback_g_per_kwh=region.annual_mean_g_per_kwh,
        )
        return supervisor.run(
            inputs.job, placement, inputs.run_id, ctx, trainer, replans=config.replans
        )
    finally:
        close_meter(meter)  # NVML's init paired with its shutdown, its polling stopped


def local_meter(
    config: TrainingConfig,
    catalog: Catalog,
    placement: Placement,
    clock: Callable[[], float],
    *,
    nvml: NvmlLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnergyMeter:
    """A local run's meter: this machine's GPUs through NVML, else the plan's estimate, at this
    machine's PUE (`compute.local_pue`). The plan's power has its region's provider's PUE in
    it, which run_meter swaps for this one."""
    region = catalog.region(placement.slot.region)
    plan_pue = catalog.pue.get(region.provider, 1.0)
    return run_meter(
        placement,
        clock,
        plan_pue=plan_pue,
        pue=config.compute.local_pue,
        nvml=nvml,
        environ=environ,
    )


def _remote_trainer(
    inputs: RunInputs, placement: Placement, ctx: TrainingContext, region: Region
) -> RemoteTrainer:
    timings = inputs.config.compute.remote
    pue = inputs.catalog.pue.get(region.provider, 1.0)
    # Not the plan's hours: the VM's estimate multiplies by the time the run lasts.
    label = estimate_label(placement.explanation.energy_estimate, pue)
    spec = spec_for(
        ctx,
        job=inputs.job.name,
        run_id=inputs.run_id,
        provider=region.provider,
        entrypoint=_entrypoint(inputs.job),
        # The VM measures its GPUs with NVML, else reports the plan's estimate, labelled. Not
        # RAPL: on a GPU instance the CPU packages are the small part, and a "measured" label
        # on them would hide the boards' energy. Measured board energy gets the provider's PUE
        # (the estimate has it already).
        meter=MeterSpec(
            kind="nvml",
            power_w=placement.power_w,
            label=label,
            pue=pue,
        ),
        heartbeat_every_s=timings.heartbeat_every_s,
        poll_every_s=timings.poll_every_s,
    )
    return RemoteTrainer(
        ctx.checkpoints.store,
        ctx.checkpoints.prefix,
        spec,
        heartbeat_timeout_s=timings.heartbeat_timeout_s,
        start_grace_s=timings.start_grace_s,
        stop_wait_s=timings.stop_wait_s,
        poll_s=timings.flow_poll_s,
        clock=inputs.clock,
        checkpoints=ctx.checkpoints,
    )


def _entrypoint(job: JobSpec) -> str:
    if not job.entrypoint:
        trainer_for(job.name, job.entrypoint)  # raises, naming the field and the fix
    return str(job.entrypoint)
