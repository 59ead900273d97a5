"""The VM-side agent as the bootstrap runs it: a real process, tiny_train, a file:// store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.energy import EstimateMeter
from carbonshift.remote.notice import NoNotice
from carbonshift.remote.protocol import (
    HEARTBEAT,
    SPEC,
    STATUS,
    Heartbeat,
    MeterSpec,
    RunSpec,
    Status,
    control_prefix,
    join,
    read,
    write,
)
from carbonshift.remote.runner import Agent
from carbonshift.training import Progress, TrainingContext, TrainingOutcome
from tests.helpers import wait_until
from tests.remote.fakes import fake_metadata

TINY = "carbonshift.examples.tiny_train:train"
PREFIX = "tiny/r1"

pytestmark = pytest.mark.slow


class Run:
    """One agent process on `spec`, and what it wrote."""

    def __init__(self, store: LocalStore, spec: RunSpec, env: dict[str, str] | None = None,
                 spec_wait_s: float = 5.0) -> None:
        self.store, self.spec = store, spec
        self.folder = control_prefix(PREFIX, spec.run_id)
        write(store, join(self.folder, SPEC), spec)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "carbonshift.remote.agent", "--spec",
             f"{store.uri}/{self.folder}/{SPEC}", "--spec-wait-s", str(spec_wait_s)],
            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def heartbeat(self) -> Heartbeat | None:
        return read(self.store, join(self.folder, HEARTBEAT), Heartbeat)

    def status(self) -> Status:
        found = read(self.store, join(self.folder, STATUS), Status)
        assert found is not None, "no status written"
        return found

    def wait(self) -> int:
        out, _ = self.proc.communicate(timeout=120)
        self.output = out
        return self.proc.returncode

    def wait_for_step(self, step: int) -> Heartbeat:
        return wait_until(lambda: (b := self.heartbeat()) and b.step >= step and b,
                          timeout_s=60, what=lambda: f"step {step}; saw {self.heartbeat()}",
                          poll_s=0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


def spec(store: LocalStore, steps: int, run_id: str = "r1", **fields: object) -> RunSpec:
    return RunSpec.model_validate({
        "job": "tiny", "run_id": run_id, "provider": "local", "entrypoint": TINY,
        "options": {"steps": str(steps)}, "checkpoint_store": store.uri,
        "checkpoint_prefix": PREFIX, "checkpoint_every_s": 0.1, "heartbeat_every_s": 0.05,
        "poll_every_s": 0.02, "meter": MeterSpec(power_w=100.0, label="test 100 W"), **fields})


def test_a_run_completes_with_heartbeats_energy_and_a_status(
        store: LocalStore, runs: list[Run]) -> None:
    run = Run(store, spec(store, 60))
    runs.append(run)
    assert run.wait() == 0, run.output
    status = run.status()
    assert (status.state, status.step, status.total_steps) == ("completed", 60, 60)
    assert status.attempt == run.spec.attempt and status.error is None
    latest = CheckpointManager(store, PREFIX).latest()
    assert latest is not None and latest.step == 60 and status.checkpoint_uri == latest.uri
    beat = run.heartbeat()
    assert beat is not None and beat.step == 60 and beat.seq >= 1
    assert 0 < beat.energy_j <= status.energy_j and beat.meter_label == "estimate: test 100 W"
    assert not beat.measured and beat.notice is None and beat.first_step == 1


def test_the_stop_marker_stops_it_at_a_checkpoint(store: LocalStore, runs: list[Run]) -> None:
    run = Run(store, spec(store, 100_000))
    runs.append(run)
    manager = CheckpointManager(store, PREFIX)
    run.wait_for_step(5)
    wait_until(manager.latest, timeout_s=60, what=lambda: "a first checkpoint", poll_s=0.05)
    manager.request_stop("stop requested by the flow")
    assert run.wait() == 3, run.output
    status = run.status()
    assert status.state == "stopped" and status.reason == "stop marker in the checkpoint store"
    latest = manager.latest()
    assert latest is not None and status.checkpoint_uri == latest.uri
    assert 0 < status.step == latest.step < status.total_steps == 100_000


def test_a_spot_notice_checkpoints_at_once_and_the_run_resumes_from_it(
        store: LocalStore, runs: list[Run]) -> None:
    with fake_metadata() as imds:
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        first = Run(store, spec(store, 400, provider="aws"), env)
        runs.append(first)
        first.wait_for_step(150)
        imds.action = {"action": "terminate", "time": "2026-01-01T00:02:00Z"}
        assert first.wait() == 3, first.output
        interrupted = first.status()
        assert interrupted.state == "interrupted"
        assert interrupted.reason == "EC2 spot terminate at 2026-01-01T00:02:00Z"
        beat = first.heartbeat()
        assert beat is not None and beat.notice == interrupted.reason
        assert 150 <= interrupted.step < 400 and interrupted.checkpoint_uri is not None
        assert ("GET", "/latest/meta-data/spot/instance-action") in imds.requests

        imds.action = None
        second = Run(store, spec(store, 400, run_id="r2", provider="aws",
                                 resume_from=interrupted.checkpoint_uri), env)
        runs.append(second)
        steps_seen = set()
        while second.proc.poll() is None:  # a fresh start would show steps below 150 for 0.5 s
            beat = second.heartbeat()
            if beat is not None and beat.attempt == second.spec.attempt and beat.step:
                steps_seen.add(beat.step)
            threading.Event().wait(0.01)
        assert second.wait() == 0, second.output
    done = second.status()
    assert (done.state, done.step, done.total_steps) == ("completed", 400, 400)
    assert steps_seen and min(steps_seen) > interrupted.step
    last = second.heartbeat()
    assert last is not None and last.first_step == interrupted.step + 1


def test_sigterm_is_the_instance_shutting_down(store: LocalStore, runs: list[Run]) -> None:
    run = Run(store, spec(store, 100_000))
    runs.append(run)
    run.wait_for_step(5)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 3, run.output
    status = run.status()
    assert status.state == "interrupted" and status.reason is not None
    assert status.reason.startswith("SIGTERM") and status.checkpoint_uri is not None


def test_an_entrypoint_that_cannot_load_is_a_failed_status(
        store: LocalStore, runs: list[Run]) -> None:
    run = Run(store, spec(store, 10, entrypoint="carbonshift.no_such_module:train"))
    runs.append(run)
    assert run.wait() == 1, run.output
    status = run.status()
    assert status.state == "failed" and "ModuleNotFoundError" in (status.error or "")


def test_no_spec_or_an_invalid_one_exits_2(store: LocalStore, runs: list[Run],
                                           tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "carbonshift.remote.agent", "--spec",
         f"{store.uri}/nothing/spec.json", "--spec-wait-s", "0.2"],
        capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no spec after 0.2 s" in missing.stderr
    store.put("bad/spec.json", b'{"version": 1, "attempt": "a1", "job": "j"}')
    bad = subprocess.run(
        [sys.executable, "-m", "carbonshift.remote.agent", "--spec", f"{store.uri}/bad/spec.json"],
        capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid spec" in bad.stderr
    status = read(store, "bad/status.json", Status)
    assert status is not None and status.state == "failed" and status.attempt == "a1"


class FlakyStore(LocalStore):
    """Refuses the first `fail` heartbeat writes."""

    def __init__(self, root: Path, fail: int) -> None:
        super().__init__(root)
        self.fail = fail

    def put(self, key: str, data: bytes) -> None:
        if key.endswith(HEARTBEAT) and self.fail > 0:
            self.fail -= 1
            raise ConnectionError("store unreachable")
        super().put(key, data)


def test_heartbeats_the_store_refuses_do_not_end_the_run(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "store", fail=2)
    manager = CheckpointManager(store, PREFIX)

    def trainer(ctx: TrainingContext) -> TrainingOutcome:
        for step in range(1, 6):
            assert ctx.on_progress is not None
            ctx.on_progress(Progress(step, 5))
            ctx.stop.wait(0.05)
        return TrainingOutcome(True, 5, 5, None)

    agent = Agent(spec=spec(store, 5), control=store, folder="ctl", checkpoints=manager,
                  meter=EstimateMeter(10.0, lambda: 0.0, "x"), notices=NoNotice(),
                  trainer=trainer)
    status = agent.run()
    assert status.state == "completed" and store.fail == 0
    assert read(store, "ctl/status.json", Status) == status
    beat = read(store, "ctl/heartbeat.json", Heartbeat)
    assert beat is not None and beat.step == 5


def test_a_failed_meter_read_repeats_the_last_reading_never_less() -> None:
    from carbonshift.remote.runner import Agent

    class Flaky:
        label = "measured: flaky"

        def __init__(self) -> None:
            self.readings: list[float | Exception] = [5.0, RuntimeError("NVML hiccup"), 9.0, 7.0]

        def read_j(self) -> float:
            r = self.readings.pop(0)
            if isinstance(r, Exception):
                raise r
            return r

    agent = Agent.__new__(Agent)  # only the meter matters here
    agent.meter = Flaky()
    agent._last_energy_j, agent._last_devices = 0.0, None
    assert [agent._reading() for _ in range(4)] == [(5.0, None), (5.0, None), (9.0, None),
                                                    (9.0, None)]


def test_the_heartbeat_and_the_status_carry_each_gpus_energy_from_one_reading() -> None:
    from carbonshift.meters.nvml import DeviceEnergy
    from carbonshift.remote.runner import Agent

    class Gpus:
        label, pue = "measured: NVML total energy, 2 x H100 x PUE 1.15", 1.15

        def __init__(self) -> None:
            self.j = [(3.6e6, 1.8e6), (7.2e6, 3.6e6)]

        def devices(self) -> list[DeviceEnergy]:
            a, b = self.j.pop(0)
            return [DeviceEnergy(0, "GPU-a", "H100", "counter", a),
                    DeviceEnergy(1, "GPU-b", "H100", "utilisation", b)]

        def read_j(self) -> float:  # a second, later reading: the agent must not mix them
            raise AssertionError("the total comes from the devices' reading")

    agent = Agent.__new__(Agent)
    agent.meter = Gpus()
    agent._last_energy_j, agent._last_devices = 0.0, None
    energy_j, devices = agent._reading()
    assert devices is not None and energy_j == pytest.approx(5.4e6 * 1.15)
    assert [(d.index, d.uuid, d.energy_kwh, d.measured, d.method) for d in devices] == [
        (0, "GPU-a", 1.0, True, "counter"), (1, "GPU-b", 0.5, False, "utilisation")]
    assert sum(d.energy_kwh for d in devices) * 3.6e6 * 1.15 == pytest.approx(energy_j)
    later = Heartbeat(attempt="a", seq=1, at_s=0.0, energy_j=agent._reading()[0],
                      devices=agent._last_devices)
    assert later.devices is not None and later.devices[0].energy_kwh == 2.0

