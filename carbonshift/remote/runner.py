"""The VM-side loop of a remote run: train on a thread; on this one, every `poll_every_s`, look
for a stop (the STOP marker, a spot/preemption notice, SIGTERM) and pass it to the trainer (it
checkpoints at the next step and returns), and every `heartbeat_every_s` write a heartbeat
(progress, energy). At the end, the status."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from carbonshift.checkpoint import CheckpointManager, ObjectStore
from carbonshift.energy import J_PER_KWH, EnergyMeter
from carbonshift.meters import read_with_devices
from carbonshift.remote.notice import NoticeSource
from carbonshift.remote.protocol import (
    HEARTBEAT,
    STATUS,
    DeviceReading,
    Heartbeat,
    RunSpec,
    State,
    Status,
    join,
    write,
)
from carbonshift.run.command import Trainer, trainer_for
from carbonshift.run.supervisor import Clock, SystemClock
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

log = logging.getLogger("carbonshift.remote")


@dataclass
class Agent:
    spec: RunSpec
    control: ObjectStore  # where spec.json is: heartbeats and the status go beside it
    folder: str
    checkpoints: CheckpointManager
    meter: EnergyMeter
    notices: NoticeSource
    trainer: Trainer | None = None  # None: the spec's entrypoint (loaded on the training thread)
    clock: Clock = field(default_factory=SystemClock)
    terminate: threading.Event = field(default_factory=threading.Event)  # SIGTERM seen

    def __post_init__(self) -> None:
        self._last_energy_j = 0.0
        self._last_devices: list[DeviceReading] | None = None
        self._progress = Progress(0, 0)
        self._seq = 0
        self._notice: str | None = None
        self._first_step: int | None = None

    def run(self) -> Status:
        s = self.spec
        ctx = TrainingContext(
            self.checkpoints,
            on_progress=self._on_progress,
            checkpoint_every_s=s.checkpoint_every_s,
            options=dict(s.options),
            resume_from=s.resume_from,
            allow_fresh_start=s.allow_fresh_start,
        )
        done = threading.Event()
        result: list[TrainingOutcome | BaseException] = []
        threading.Thread(target=self._train, args=(ctx, done, result), daemon=True).start()
        reason: str | None = None
        last_beat = float("-inf")
        while True:
            finished = done.is_set()
            if not finished and reason is None:
                reason = self._why_stop()
                if reason is not None:
                    log.warning("stopping at a checkpoint: %s", reason)
                    ctx.stop.set()
                    last_beat = float("-inf")  # the flow hears of a notice at once
            now = self.clock.now()
            if finished or now - last_beat >= s.heartbeat_every_s:
                self._beat(now)
                last_beat = now
            if finished:
                break
            self.clock.wait(done, s.poll_every_s)
        self.checkpoints.close()
        status = self._status(result[0], reason)
        self._put(STATUS, status, tries=3)
        return status

    def _on_progress(self, progress: Progress) -> None:
        if self._first_step is None:
            self._first_step = progress.step
        self._progress = progress  # one assignment: the heartbeat thread reads it as it is

    def _train(self, ctx: TrainingContext, done: threading.Event, result: list[object]) -> None:
        try:
            trainer = self.trainer or trainer_for(self.spec.job, self.spec.entrypoint)
            result.append(trainer(ctx))
        except BaseException as e:  # noqa: BLE001 - reported in the status (SystemExit too)
            log.exception("training failed")
            result.append(e)
        finally:
            done.set()

    def _why_stop(self) -> str | None:
        if self.terminate.is_set():
            self._notice = "SIGTERM: the instance is shutting down"
            return self._notice
        self._notice = self.notices.notice()
        if self._notice is not None:
            return self._notice
        try:
            if self.checkpoints.stop_requested():
                return "stop marker in the checkpoint store"
        except Exception as e:  # noqa: BLE001 - a store hiccup must not end the run
            log.warning("could not look for the stop marker: %s", e)
        return None

    def _reading(self) -> tuple[float, list[DeviceReading] | None]:
        """The meter's energy and, where it reads each GPU, theirs, from one reading; after a
        failed read, the last good one (a counter loses nothing across a missed read, and a
        heartbeat's energy must never drop)."""
        try:
            energy_j, devices = read_with_devices(self.meter)
        except Exception as e:  # noqa: BLE001 - a meter that fails reads as nothing more
            log.warning("energy meter %s failed: %s", self.meter.label, e)
            return self._last_energy_j, self._last_devices
        if energy_j < self._last_energy_j:
            return self._last_energy_j, self._last_devices
        self._last_energy_j = energy_j
        self._last_devices = None  # a total without devices: no stale ones beside it
        if devices is not None:
            self._last_devices = [
                DeviceReading(
                    index=d.index,
                    uuid=d.uuid,
                    name=d.name,
                    energy_kwh=d.energy_j / J_PER_KWH,
                    measured=d.measured,
                    method=d.method,
                )
                for d in devices
            ]
        return energy_j, self._last_devices

    def _beat(self, now: float) -> None:
        p = self._progress
        energy_j, devices = self._reading()
        beat = Heartbeat(
            attempt=self.spec.attempt,
            seq=self._seq,
            at_s=now,
            step=p.step,
            total_steps=p.total_steps,
            energy_j=energy_j,
            meter_label=self.meter.label,
            measured=self.meter.label.startswith("measured"),
            notice=self._notice,
            first_step=self._first_step,
            devices=devices,
        )
        self._seq += 1
        self._put(HEARTBEAT, beat, tries=1)

    def _status(self, result: TrainingOutcome | BaseException, reason: str | None) -> Status:
        if isinstance(result, BaseException):
            latest = self.checkpoints.latest()
            outcome = TrainingOutcome(
                False, latest.step if latest else 0, 0, latest.uri if latest else None
            )
            state: State = "failed"
        else:
            outcome = result
            state = "completed" if result.completed else "stopped"
            if not result.completed and self._notice is not None:
                state = "interrupted"
        energy_j, devices = self._reading()
        return Status(
            attempt=self.spec.attempt,
            state=state,
            at_s=self.clock.now(),
            step=outcome.step,
            total_steps=outcome.total_steps,
            checkpoint_uri=outcome.checkpoint_uri,
            reason=None if state in ("completed", "failed") else reason or outcome.stopped_reason,
            error=f"{type(result).__name__}: {result}" if state == "failed" else None,
            energy_j=energy_j,
            meter_label=self.meter.label,
            devices=devices,
        )

    def _put(self, name: str, model: Heartbeat | Status, tries: int) -> None:
        never = threading.Event()
        for attempt in range(tries):
            try:
                write(self.control, join(self.folder, name), model)
                return
            except Exception as e:  # noqa: BLE001 - logged; the flow sees a missing heartbeat
                log.warning("could not write %s (try %d of %d): %s", name, attempt + 1, tries, e)
                if attempt + 1 < tries:
                    self.clock.wait(never, 1.0)
