"""The flow's side of a remote run: a Trainer for the Supervisor that trains nothing itself. It
publishes the spec, follows the VM's heartbeats (progress, energy), asks for a stop with the
store's STOP marker and returns the outcome the VM's status reports. Everything goes through the
object store, so stop-and-re-plan works the same on every compute.

A heartbeat lost (none new for `heartbeat_timeout_s`, or none at all within `start_grace_s`)
counts as an interruption: the outcome is the latest checkpoint, stopped, "heartbeat lost".
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from carbonshift.checkpoint import CheckpointManager, ObjectStore, open_store
from carbonshift.energy import J_PER_KWH, Sample
from carbonshift.meters.nvml import DeviceEnergy
from carbonshift.remote.protocol import (
    HEARTBEAT,
    SPEC,
    STATUS,
    DeviceReading,
    Heartbeat,
    ProtocolError,
    RunSpec,
    Status,
    control_prefix,
    join,
    read,
    write,
)
from carbonshift.remote.timeline import Reading, on_flow_clock
from carbonshift.run.supervisor import Clock, SystemClock
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

log = logging.getLogger("carbonshift.remote")

HEARTBEAT_LOST = "heartbeat lost"


class RemoteRunFailed(RuntimeError):
    """The VM reported that training failed; the message carries its error."""


class RemoteMeter:
    """The VM's energy as an EnergyMeter: what its latest heartbeat said (0 before the first),
    each reading kept with the VM's time and the flow's, for `samples_between`."""

    def __init__(self, pue: float | None = None, delay_s: float = 5.0) -> None:
        self.label = "remote: no reading yet"
        self.pue = pue  # the PUE the VM's meter applies (the spec's): the records state it
        self.readings: list[Reading] = []
        self._delay_s = delay_s  # the flow's polling delay: see carbonshift.remote.timeline
        self._energy_j = 0.0
        self._devices: list[DeviceReading] = []

    def update(
        self, energy_j: float, label: str, devices: list[DeviceReading] | None = None
    ) -> None:
        self._energy_j, self.label = energy_j, f"{label} (on the instance)"
        self._devices = list(devices or [])

    def devices(self) -> list[DeviceEnergy]:
        """Each GPU's energy (before PUE, since the VM's agent started) as the latest heartbeat
        or status reported it; none when the VM sends only its total (an older agent, or no
        NVML there)."""
        return [
            DeviceEnergy(d.index, d.uuid, d.name, d.method, d.energy_kwh * J_PER_KWH)
            for d in self._devices
        ]

    def record(
        self,
        vm_at_s: float,
        seen_s: float,
        energy_j: float,
        label: str,
        devices: list[DeviceReading] | None = None,
    ) -> None:
        """A reading of the VM's; one at or before the newest (a status written in the same
        instant as the last heartbeat, a VM clock that stepped back) replaces its energy."""
        last = self.readings[-1] if self.readings else None
        if last is None or vm_at_s > last.vm_at_s:
            self.readings.append(Reading(vm_at_s, seen_s, energy_j))
        else:
            self.readings[-1] = Reading(last.vm_at_s, last.seen_s, max(energy_j, last.energy_j))
        self.update(energy_j, label, devices)

    def read_j(self) -> float:
        return self._energy_j

    def samples_between(self, start_s: float, end_s: float) -> list[Sample]:
        """The VM's readings as the run's samples on the flow's clock, within [start_s, end_s]:
        each interval's energy is the VM's own, not the heartbeat's arrival's."""
        return on_flow_clock(self.readings, start_s, end_s, self._delay_s)


@dataclass
class RemoteTrainer:
    store: ObjectStore  # the run's store; `prefix` is the run's folder in it
    prefix: str
    spec: RunSpec
    heartbeat_timeout_s: float = 180.0
    start_grace_s: float = 900.0  # boot, install, fetch: the first heartbeat may take a while
    # After a stop, the VM's status is waited for this long: less than the Supervisor's
    # stop_grace_s (120 s), which releases the instance when it has passed.
    stop_wait_s: float = 110.0
    poll_s: float = 5.0
    clock: Clock = field(default_factory=SystemClock)
    checkpoints: CheckpointManager | None = None  # default: the spec's checkpoint folder

    def __post_init__(self) -> None:
        self.folder = control_prefix(self.prefix, self.spec.run_id)
        self.manager = self.checkpoints or _manager(self.spec)
        # A reading is seen within one poll of its writing, give or take the store's delay.
        self.meter = RemoteMeter(pue=self.spec.meter.pue, delay_s=2 * self.poll_s)
        self._last: tuple[int, float] | None = None  # the newest heartbeat's (seq, at_s)
        self._forwarded = 0  # progress reports passed on
        self._lost = False
        self._notice: str | None = None
        self._status: Status | None = None
        self._published = False

    @property
    def spec_uri(self) -> str:
        """What the bootstrap hands the agent (`--spec`)."""
        return f"{self.store.uri}/{join(self.folder, SPEC)}"

    def publish(self) -> None:
        """Write the spec, after clearing what an earlier attempt left (its heartbeat and status,
        a STOP marker). Call before provisioning, so a booting VM finds it."""
        for name in (HEARTBEAT, STATUS):
            self.store.delete(join(self.folder, name))
        self.manager.clear_stop()
        write(self.store, join(self.folder, SPEC), self.spec)
        self._published = True

    def lost(self) -> bool:
        return self._lost

    def interrupted(self) -> bool:
        """A spot/preemption notice seen, an interrupted status, or a lost heartbeat."""
        state = self._status.state if self._status is not None else None
        return self._lost or self._notice is not None or state == "interrupted"

    def samples(self) -> list[Sample]:
        """The VM's energy readings, on the VM's clock."""
        return [Sample(r.vm_at_s, r.energy_j) for r in self.meter.readings]

    def __call__(self, ctx: TrainingContext) -> TrainingOutcome:
        if ctx.checkpoints.uri.rstrip("/") != self.manager.uri.rstrip("/"):
            raise ValueError(
                f"remote run {self.spec.run_id}: the spec checkpoints to {self.manager.uri} "
                f"but the run's context to {ctx.checkpoints.uri}; build the spec with spec_for(ctx)"
            )
        if not self._published:
            self.publish()
        started = last_seen = self.clock.now()
        stop_asked: float | None = None
        idle = threading.Event()  # never set: after a stop, waits must still take time
        while True:
            now = self.clock.now()
            if self._poll(ctx, now):
                last_seen = now
            if self._status is not None:
                return self._outcome(self._status)
            if ctx.stop.is_set() and stop_asked is None:
                self.manager.request_stop("stop requested by the flow")
                stop_asked = now
            quiet_s, limit_s = now - last_seen, self.heartbeat_timeout_s
            if self._last is None:
                quiet_s, limit_s = now - started, self.start_grace_s
            if quiet_s > limit_s:
                return self._give_up(f"{HEARTBEAT_LOST}: none for {quiet_s:.0f} s")
            if stop_asked is not None and now - stop_asked > self.stop_wait_s:
                return self._give_up(
                    f"{HEARTBEAT_LOST}: no status {self.stop_wait_s:g} s after the stop"
                )
            self.clock.wait(idle if stop_asked is not None else ctx.stop, self.poll_s)

    def _poll(self, ctx: TrainingContext, now: float) -> bool:
        """Read the heartbeat and the status; True when the heartbeat is a new one."""
        try:
            beat = read(self.store, join(self.folder, HEARTBEAT), Heartbeat)
            status = read(self.store, join(self.folder, STATUS), Status)
        except ProtocolError:
            raise  # not a hiccup: another version of carbonshift, or something else, wrote it
        except Exception as e:  # noqa: BLE001 - a store hiccup: the heartbeat timeout decides
            log.warning("remote run %s: could not read its heartbeat: %s", self.spec.run_id, e)
            return False
        seen_s = self.clock.now()  # after the reads: no reading is seen before it is written
        fresh = self._heartbeat(ctx, beat, seen_s)
        if status is not None and status.attempt == self.spec.attempt:  # after the last beat
            self._status = status
            self.meter.record(
                status.at_s, seen_s, status.energy_j, status.meter_label, status.devices
            )
        return fresh

    def _heartbeat(self, ctx: TrainingContext, beat: Heartbeat | None, seen_s: float) -> bool:
        # New is different, not greater: a VM that boots again starts counting again.
        if beat is None or beat.attempt != self.spec.attempt or (beat.seq, beat.at_s) == self._last:
            return False
        self._last = (beat.seq, beat.at_s)
        self._notice = beat.notice or self._notice
        self.meter.record(beat.at_s, seen_s, beat.energy_j, beat.meter_label, beat.devices)
        if ctx.on_progress is not None and beat.total_steps:
            # The Supervisor takes the first report for the resume point: give it the VM's.
            first = beat.first_step if self._forwarded == 0 else None
            if first is not None and first < beat.step:
                ctx.on_progress(Progress(first, beat.total_steps))
            ctx.on_progress(Progress(beat.step, beat.total_steps))
            self._forwarded += 1
        return True

    def _outcome(self, status: Status) -> TrainingOutcome:
        if status.state == "failed":
            raise RemoteRunFailed(f"remote run {self.spec.run_id} failed: {status.error}")
        completed = status.state == "completed"
        uri = status.checkpoint_uri or self._latest()[0]
        return TrainingOutcome(
            completed,
            status.step,
            status.total_steps,
            uri,
            None if completed else status.reason or status.state,
        )

    def _give_up(self, reason: str) -> TrainingOutcome:
        """No word from the VM: as an interruption, from the latest checkpoint in the store."""
        log.warning(
            "remote run %s: %s; resuming from the latest checkpoint", self.spec.run_id, reason
        )
        self._lost = True
        try:  # a VM that still trains without reaching the store must stop, too
            self.manager.request_stop(reason)
        except Exception as e:  # noqa: BLE001 - the instance is released anyway
            log.warning("could not write the stop marker: %s", e)
        uri, step, total = self._latest()
        return TrainingOutcome(False, step, total, uri, reason)

    def _latest(self) -> tuple[str | None, int, int]:
        # Manifests only: the flow's process must not load a model of many GB (the VM that
        # resumes verifies the parts).
        latest = self.manager.latest_committed()
        if latest is None:
            return None, 0, 0
        found_step, uri, meta = latest
        step = int(meta.get("step", found_step))
        return uri, step, int(meta.get("total_steps", step))


def _manager(spec: RunSpec) -> CheckpointManager:
    store, base = open_store(spec.checkpoint_store)
    return CheckpointManager(store, join(base, spec.checkpoint_prefix), keep=spec.keep)
