"""The training run, supervised: provision, train on a thread, watch the grid on this one, stop
and ask for a re-plan when the rule says so, account energy per interval, always release; and
report what happened as plain data."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from carbonshift.compute import Compute, LaunchRequest
from carbonshift.energy import J_PER_KWH, Accounting, EnergyMeter, Sample, account
from carbonshift.job import JobSpec
from carbonshift.ledger import DeviceEnergy, LedgerRecord
from carbonshift.meters import read_with_devices
from carbonshift.meters.nvml import DeviceEnergy as GpuEnergy
from carbonshift.monitor import Assessment, MonitorRule, RunFacts, Verdict, Watch
from carbonshift.run.command import Trainer
from carbonshift.run.grid import ActualIntensity, planned_series
from carbonshift.run.placement import Placement
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

log = logging.getLogger("carbonshift.run")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Block until `event` is set or `timeout_s` has passed; True if it is set."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(timeout_s)


class RunReport(BaseModel):
    """What a supervised run did. `outcome` is None when the trainer failed (`error` says how);
    `verdict` is the monitor's call to stop, None when training ended by itself."""

    model_config = ConfigDict(frozen=True)

    job: str
    run_id: str
    region: str
    instance: str | None
    outcome: TrainingOutcome | None
    verdict: Assessment | None
    history: list[Assessment]
    samples: list[Sample]
    meter_label: str
    accounting: Accounting
    released: bool
    error: str | None = None
    started_step: int = 0  # the step this run resumed from (0 for a fresh run)
    refused: list[str] = []  # planned options refused for capacity before this one
    devices: list[DeviceEnergy] = []  # energy by device, or the instance's total only
    pue: float | None = None  # the PUE in the meter's energy (None: the meter does not say)
    # Set after the run by the step that settles it (carbonshift.accounting.settle).
    ledger: LedgerRecord | None = None

    @property
    def stopped_by(self) -> str | None:
        """Why the monitor stopped the run, if it did."""
        return self.verdict.reason if self.verdict is not None else None

    @property
    def replan(self) -> bool:
        """The monitor stopped an unfinished run that is otherwise healthy: plan the rest."""
        return (
            self.error is None
            and self.verdict is not None
            and self.verdict.verdict is Verdict.STOP
            and self.outcome is not None
            and not self.outcome.completed
        )


class _Progress:
    """The trainer's latest progress, for the rule's `remaining_s`, passed on to `forward`."""

    def __init__(self, forward: Callable[[Progress], None] | None) -> None:
        self._base: int | None = None  # the step this run started from (0, or its resume point)
        self._latest: Progress | None = None
        self._forward = forward

    @property
    def base(self) -> int:
        return self._base or 0

    def left(self) -> float:
        """The share of this run's planned work still to do. A resumed run's slot covers only
        the rest of the job, so its steps count from where it resumed, not from step 0."""
        p, base = self._latest, self._base
        if p is None or base is None or p.total_steps <= base:
            return 1.0
        return max(0.0, (p.total_steps - p.step) / (p.total_steps - base))

    def __call__(self, progress: Progress) -> None:
        if self._base is None:
            self._base = max(0, progress.step - 1)  # the first report is its first step done
        self._latest = progress
        if self._forward is not None:
            self._forward(progress)


class _TrainerThread:
    """Runs the trainer in a copy of the caller's context (an orchestrator's run context and
    loggers carry over); `done` is set however it ends."""

    def __init__(self, trainer: Trainer, ctx: TrainingContext) -> None:
        self.done = threading.Event()
        self.outcome: TrainingOutcome | None = None
        self.error: str | None = None
        copied = contextvars.copy_context()
        # Daemon: a cancelled run must not keep the process alive for a trainer asked to stop.
        self._thread = threading.Thread(
            target=copied.run, args=(self._body, trainer, ctx), name="trainer", daemon=True
        )

    def _body(self, trainer: Trainer, ctx: TrainingContext) -> None:
        try:
            self.outcome = trainer(ctx)
        except BaseException as e:  # noqa: BLE001 - reported (SystemExit too); still released
            log.exception("training failed")
            self.error = f"training failed: {type(e).__name__}: {e}"
        finally:
            self.done.set()

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def alive(self) -> bool:
        return self._thread.is_alive()


@dataclass
class Supervisor:
    """The ports a run needs; `run` supervises one run with them."""

    compute: Compute
    meter: EnergyMeter
    actuals: ActualIntensity
    clock: Clock = field(default_factory=SystemClock)
    rule: MonitorRule = field(default_factory=MonitorRule)
    stop_grace_s: float = 120.0  # how long a cancelled run waits for the trainer's checkpoint
    # Where neither actuals nor the plan's forecast cover an interval: the run region's static
    # figure (its annual mean). None: the plan's home-baseline mean, labelled as the fallback.
    fallback_g_per_kwh: float | None = None

    def run(
        self,
        job: JobSpec,
        placement: Placement,
        run_id: str,
        context: TrainingContext,
        trainer: Trainer,
        replans: int = 0,
    ) -> RunReport:
        """Supervise one run of `job` at `placement`. `context.stop` is the trainer's stop
        signal; `context.on_progress` still receives every progress report."""
        slot = placement.slot
        progress = _Progress(context.on_progress)
        training = _TrainerThread(trainer, replace(context, on_progress=progress))
        samples: list[Sample] = []
        first_devices: list[GpuEnergy] | None = None
        last_devices: list[GpuEnergy] | None = None
        watch: Watch | None = None
        verdict: Assessment | None = None
        monitor_error: str | None = None
        instance: str | None = None
        try:
            request = LaunchRequest(
                job.name, run_id, slot.region, slot.instance_type, spot=job.interruptible
            )
            instance = self.compute.provision(request).handle
            energy_j, first_devices = read_with_devices(self.meter)
            samples.append(Sample(self.clock.now(), energy_j))
            started_s = samples[0].at_s

            def facts() -> RunFacts:
                return RunFacts(
                    started_s=started_s,
                    deadline_s=placement.deadline.timestamp(),
                    remaining_s=slot.duration_s * progress.left(),
                    resume_overhead_s=job.resume_overhead_s,
                    replans=replans,
                )

            watch = Watch(
                planned=planned_series(placement.forecast),
                facts=facts,
                actuals=self.actuals.actuals,
                clock=self.clock.now,
                wait=lambda s: self.clock.wait(training.done, s),
                rule=self.rule,
                interrupted=lambda: self.compute.interrupted(run_id),
                on_tick=lambda now_s: samples.append(Sample(now_s, self.meter.read_j())),
                completed=lambda: training.outcome is not None and training.outcome.completed,
            )
            training.start()
            try:
                verdict = watch.run()
            except Exception as e:  # noqa: BLE001 - an unwatched run stops at a checkpoint
                log.exception("monitor failed")
                monitor_error = f"monitor failed: {type(e).__name__}: {e}"
            if verdict is not None or monitor_error is not None:
                context.stop.set()
            training.join()
            energy_j, last_devices = read_with_devices(self.meter)
            samples.append(Sample(self.clock.now(), energy_j))
        finally:
            if training.alive():  # cancelled or crashed here: ask the trainer to checkpoint
                context.stop.set()
                # The instance must outlive the checkpoint the trainer is writing on it. An
                # event wait, not the clock's: a cancelled clock must not skip the release.
                training.done.wait(self.stop_grace_s)
            released = self.compute.release(run_id)
        errors = [e for e in (training.error, monitor_error) if e is not None]
        timed = getattr(self.meter, "samples_between", None)
        if callable(timed):  # a remote meter: the VM's readings, on this clock (see the meter)
            samples = timed(samples[0].at_s, samples[-1].at_s)
            first_devices = None  # they count from the VM's agent's start, as its samples do
        accounting = self._account(placement, samples)
        return RunReport(
            job=job.name,
            run_id=run_id,
            region=slot.region,
            instance=instance,
            outcome=training.outcome,
            verdict=verdict,
            history=list(watch.history) if watch is not None else [],
            samples=samples,
            meter_label=self.meter.label,
            accounting=accounting,
            released=released,
            error="; ".join(errors) or None,
            started_step=progress.base,
            devices=devices_of(self.meter, accounting.energy_kwh, first_devices, last_devices),
            pue=_pue(self.meter),
        )

    def _account(self, placement: Placement, samples: list[Sample]) -> Accounting:
        """Energy per interval x actual intensity, against the same profile started at once at
        home (the plan's baseline)."""
        start_s, end_s = samples[0].at_s, samples[-1].at_s
        try:
            actual = self.actuals.actuals(start_s, max(end_s, start_s + 1))
        except Exception as e:  # noqa: BLE001 - accounted on the forecast, and labelled so
            log.warning("actual intensity for the accounting unavailable: %s", e)
            actual = None
        home = placement.explanation.now_home
        shift_s = placement.slot.start.timestamp() - home.start.timestamp()
        return account(
            samples,
            actual,
            planned_series(placement.forecast),
            None,
            shift_s,
            self.fallback_g_per_kwh if self.fallback_g_per_kwh is not None else home.mean_g_per_kwh,
        )


def devices_of(
    meter: EnergyMeter,
    total_kwh: float,
    first: Sequence[GpuEnergy] | None = None,
    last: Sequence[GpuEnergy] | None = None,
) -> list[DeviceEnergy]:
    """Energy by GPU over the run (`last` minus `first`, the readings at the run's first and
    last samples; `last` None: read the meter now), before PUE; else the run's total as one
    entry, also before PUE where the meter states its PUE: every row is the boards' energy and
    the total is the rows times the PUE. An instance that reports only its total (an older
    agent, an estimate) is one row, named so."""
    measured = meter.label.startswith("measured") or "measured:" in meter.label
    if last is None:
        read = getattr(meter, "devices", None)
        if callable(read):
            try:
                last = list(read())
            except Exception as e:  # noqa: BLE001 - a lost board still leaves the total
                log.warning("energy by device unavailable: %s", e)
    if last:
        before = {d.index: d.energy_j for d in first or []}
        return [
            DeviceEnergy(
                device=f"GPU {d.index} {d.name}".rstrip(),
                energy_kwh=max(d.energy_j - before.get(d.index, 0.0), 0.0) / J_PER_KWH,
                measured=d.measured,
                method=f"NVML {d.method}",
            )
            for d in last
        ]
    remote = "(on the instance)" in meter.label
    pue = _pue(meter)
    return [
        DeviceEnergy(
            device="instance (total only)" if remote else "instance",
            energy_kwh=total_kwh / pue if pue else total_kwh,
            measured=measured,
            method=meter.label,
        )
    ]


def _pue(meter: EnergyMeter) -> float | None:
    pue = getattr(meter, "pue", None)
    return float(pue) if isinstance(pue, int | float) else None
