"""The VM side of a remote run: `python -m carbonshift.remote.agent --spec <URI of spec.json>`.

It trains the spec's entrypoint on a thread against the spec's checkpoint store and, on this
thread, every `poll_every_s`: looks for a stop (the STOP marker, a spot/preemption notice,
SIGTERM), which it passes to the trainer (checkpoint at the next step, then return), and every
`heartbeat_every_s` writes a heartbeat (progress, energy). At the end it writes the status.
Exit codes are the command protocol's: 0 completed, 3 stopped or interrupted, 1 failed, 2 no
usable spec.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

from carbonshift.checkpoint import CheckpointManager, ObjectStore, open_store
from carbonshift.energy import EnergyMeter, open_meter
from carbonshift.remote.notice import NoticeSource, notice_source
from carbonshift.remote.protocol import (
    HEARTBEAT,
    STATUS,
    Heartbeat,
    ProtocolError,
    RunSpec,
    State,
    Status,
    join,
    open_at,
    write,
)
from carbonshift.run.command import EXIT_STOPPED, Trainer, trainer_for
from carbonshift.run.supervisor import Clock, SystemClock
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

log = logging.getLogger("carbonshift.remote")

EXIT_FAILED, EXIT_BAD_SPEC = 1, 2
EXIT_CODES: dict[State, int] = {
    "completed": 0,
    "stopped": EXIT_STOPPED,
    "interrupted": EXIT_STOPPED,
    "failed": EXIT_FAILED,
}


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
        self._progress = Progress(0, 0)
        self._seq = 0
        self._notice: str | None = None

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

    def _energy_j(self) -> float:
        try:
            return max(0.0, self.meter.read_j())
        except Exception as e:  # noqa: BLE001 - a meter that fails reads as nothing more
            log.warning("energy meter %s failed: %s", self.meter.label, e)
            return 0.0

    def _beat(self, now: float) -> None:
        p = self._progress
        beat = Heartbeat(
            attempt=self.spec.attempt,
            seq=self._seq,
            at_s=now,
            step=p.step,
            total_steps=p.total_steps,
            energy_j=self._energy_j(),
            meter_label=self.meter.label,
            measured=self.meter.label.startswith("measured"),
            notice=self._notice,
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
        return Status(
            attempt=self.spec.attempt,
            state=state,
            at_s=self.clock.now(),
            step=outcome.step,
            total_steps=outcome.total_steps,
            checkpoint_uri=outcome.checkpoint_uri,
            reason=None if state in ("completed", "failed") else reason or outcome.stopped_reason,
            error=f"{type(result).__name__}: {result}" if state == "failed" else None,
            energy_j=self._energy_j(),
            meter_label=self.meter.label,
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


def load_spec(store: ObjectStore, key: str, wait_s: float, clock: Clock) -> RunSpec:
    """The spec, waited for: the VM may boot before the flow has written it."""
    never, deadline = threading.Event(), clock.now() + wait_s
    while not store.exists(key):
        if clock.now() >= deadline:
            raise ProtocolError(f"{store.uri}/{key}: no spec after {wait_s:g} s")
        clock.wait(never, min(2.0, max(deadline - clock.now(), 0.0)))
    raw = store.get(key)
    try:
        return RunSpec.model_validate_json(raw)
    except ValueError as e:
        attempt = _attempt_of(raw)
        if attempt is not None:  # tell the flow now, rather than by a lost heartbeat
            error = f"invalid spec: {e}"
            failed = Status(attempt=attempt, state="failed", at_s=clock.now(), error=error)
            write(store, join(key.rpartition("/")[0], STATUS), failed)
        raise ProtocolError(f"{store.uri}/{key}: invalid spec: {e}") from None


def _attempt_of(raw: bytes) -> str | None:
    try:
        attempt = json.loads(raw).get("attempt")
    except (ValueError, AttributeError):
        return None
    return attempt if isinstance(attempt, str) else None


def agent_for(spec_uri: str, wait_s: float, clock: Clock | None = None) -> Agent:
    clock = clock or SystemClock()
    control, key = open_at(spec_uri)
    spec = load_spec(control, key, wait_s, clock)
    store, base = open_store(spec.checkpoint_store)
    m = spec.meter
    meter = open_meter(m.power_w, time.monotonic, m.label, prefer_rapl=m.kind != "estimate")
    if m.kind == "rapl" and not meter.label.startswith("measured"):
        log.warning("RAPL is not readable here: energy is the estimate (%s)", meter.label)
    return Agent(
        spec=spec,
        control=control,
        folder=key.rpartition("/")[0],
        checkpoints=CheckpointManager(store, join(base, spec.checkpoint_prefix), keep=spec.keep),
        meter=meter,
        notices=notice_source(spec.provider),
        clock=clock,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carbonshift.remote.agent")
    parser.add_argument("--spec", required=True, help="URI of the run's spec.json")
    parser.add_argument("--spec-wait-s", type=float, default=900.0, help="wait this long for it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        agent = agent_for(args.spec, args.spec_wait_s)
    except (ProtocolError, ValueError, OSError) as e:
        log.error("%s", e)
        return EXIT_BAD_SPEC
    signal.signal(signal.SIGTERM, lambda *_: agent.terminate.set())
    status = agent.run()
    log.info(
        "run %s %s at step %d/%d", agent.spec.run_id, status.state, status.step, status.total_steps
    )
    return EXIT_CODES[status.state]


if __name__ == "__main__":
    sys.exit(main())
