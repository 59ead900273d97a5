"""The flow's side of a remote run, against a store the test writes as the VM would, on a clock
that only moves when the observer waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.energy import Sample
from carbonshift.remote import HEARTBEAT_LOST, RemoteRunFailed, RemoteTrainer, spec_for
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
    write,
)
from carbonshift.run.supervisor import devices_of
from carbonshift.training import Progress, TrainingContext
from tests.remote.fakes import T0, ScriptClock, Vm

PREFIX = "tiny/r1"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def setup(store: LocalStore, **kwargs: float) -> tuple[RemoteTrainer, TrainingContext, Vm,
                                                       ScriptClock, list[Progress]]:
    seen: list[Progress] = []
    ctx = TrainingContext(CheckpointManager(store, PREFIX), on_progress=seen.append)
    spec = spec_for(ctx, job="tiny", run_id="r1", provider="aws",
                    entrypoint="carbonshift.examples.tiny_train:train")
    clock = ScriptClock()
    options = {"heartbeat_timeout_s": 60.0, "start_grace_s": 300.0, "stop_wait_s": 120.0,
               "poll_s": 5.0, **kwargs}
    trainer = RemoteTrainer(store, PREFIX, spec, clock=clock, **options)  # type: ignore[arg-type]
    return trainer, ctx, Vm(store, PREFIX, spec), clock, seen


def test_progress_and_energy_are_forwarded_and_the_status_ends_it(store: LocalStore) -> None:
    trainer, ctx, vm, clock, seen = setup(store)
    for i, step in enumerate((10, 50, 100)):
        clock.at(10 * (i + 1), lambda s=step: vm.beat(s, energy_j=s * 3.0))
    clock.at(31, lambda: vm.status("completed", 100, checkpoint_uri="file:///x/ckpt-100",
                                   energy_j=310.0, meter_label="measured: test"))
    outcome = trainer(ctx)
    assert outcome.completed and outcome.step == 100 and outcome.checkpoint_uri == "file:///x/ckpt-100"
    assert outcome.stopped_reason is None
    assert seen == [Progress(10, 100), Progress(50, 100), Progress(100, 100)]
    assert [s.energy_j for s in trainer.samples()] == [30.0, 150.0, 300.0, 310.0]
    assert trainer.meter.read_j() == 310.0 and trainer.meter.label.startswith("measured: test")
    assert not trainer.lost() and not trainer.interrupted()
    assert clock.t <= T0 + 35  # polled every 5 s, not waited out


def test_publish_writes_the_spec_and_clears_what_an_earlier_attempt_left(
        store: LocalStore) -> None:
    trainer, ctx, vm, _, _ = setup(store)
    vm.beat(5)
    vm.status("completed", 100)
    ctx.checkpoints.request_stop("an old stop")
    trainer.publish()
    folder = control_prefix(PREFIX, "r1")
    assert not store.exists(join(folder, HEARTBEAT)) and not store.exists(join(folder, STATUS))
    assert not ctx.checkpoints.stop_requested()
    assert RunSpec.model_validate_json(store.get(join(folder, SPEC))) == trainer.spec
    assert trainer.spec_uri == f"{store.uri}/{PREFIX}/remote/r1/spec.json"
    assert Path(trainer.spec_uri.removeprefix("file://")).is_file()


def test_a_stop_writes_the_stop_marker_and_waits_for_the_status(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    marker_at: list[float] = []
    clock.at(5, lambda: vm.beat(20))
    clock.at(12, ctx.stop.set)

    def vm_sees_the_marker() -> None:
        if ctx.checkpoints.stop_requested():
            marker_at.append(clock.now())
            vm.status("stopped", 37, checkpoint_uri="file:///x/ckpt-37",
                      reason="stop marker in the checkpoint store")
        else:
            clock.at(clock.now() - T0 + 5, vm_sees_the_marker)

    clock.at(15, vm_sees_the_marker)
    outcome = trainer(ctx)
    assert marker_at, "the stop marker was never written"
    assert not outcome.completed and outcome.step == 37
    assert outcome.checkpoint_uri == "file:///x/ckpt-37"
    assert outcome.stopped_reason == "stop marker in the checkpoint store"
    assert not trainer.interrupted()


def test_a_lost_heartbeat_is_an_interruption_from_the_latest_checkpoint(
        store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    with CheckpointManager(store, PREFIX) as writer:
        uri = writer.save(40, {"model.pt": b"x"}, {"step": 40, "total_steps": 100})
    clock.at(5, lambda: vm.beat(30))
    clock.at(10, lambda: vm.beat(40))
    clock.at(15, lambda: vm.beat(40, seq=1, at_s=T0 + 1))  # the same one again: no sign of life
    outcome = trainer(ctx)
    assert clock.t - T0 > 10 + 60 and clock.t - T0 <= 10 + 60 + 5
    assert not outcome.completed and (outcome.step, outcome.total_steps) == (40, 100)
    assert outcome.checkpoint_uri == uri
    assert outcome.stopped_reason is not None and outcome.stopped_reason.startswith(HEARTBEAT_LOST)
    assert trainer.lost() and trainer.interrupted()
    assert ctx.checkpoints.stop_requested()  # a VM still training, cut off from us, stops too


def test_no_heartbeat_at_all_is_lost_after_the_start_grace(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    clock.at(5, lambda: vm.beat(10, attempt="an-earlier-attempt"))  # not ours
    outcome = trainer(ctx)
    assert 300 < clock.t - T0 <= 305
    assert trainer.lost() and outcome.checkpoint_uri is None and outcome.step == 0


def test_a_failed_run_raises_with_the_vms_error(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    clock.at(5, lambda: vm.status("failed", 3, error="ImportError: no module named 'mine'"))
    with pytest.raises(RemoteRunFailed, match="remote run r1 failed: ImportError: no module"):
        trainer(ctx)


def test_a_notice_counts_as_an_interruption_before_the_status_arrives(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    seen: list[bool] = []
    clock.at(5, lambda: vm.beat(20))
    clock.at(6, lambda: seen.append(trainer.interrupted()))
    clock.at(10, lambda: vm.beat(21, notice="EC2 spot terminate at 2026-01-01T00:02:00Z"))
    clock.at(11, lambda: seen.append(trainer.interrupted()))
    clock.at(20, lambda: vm.status("interrupted", 22, checkpoint_uri="file:///x/ckpt-22",
                                   reason="EC2 spot terminate at 2026-01-01T00:02:00Z"))
    outcome = trainer(ctx)
    assert seen == [False, True]
    assert trainer.interrupted() and not trainer.lost()
    assert outcome.step == 22 and outcome.stopped_reason.startswith("EC2 spot terminate")


def test_a_stop_without_a_status_is_waited_for_a_bounded_time(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store, heartbeat_timeout_s=1e9)
    for t in range(5, 400, 5):
        clock.at(t, lambda t=t: vm.beat(t // 5))
    clock.at(12, ctx.stop.set)
    outcome = trainer(ctx)
    assert 15 + 120 <= clock.t - T0 <= 15 + 125
    assert trainer.lost() and "no status" in (outcome.stopped_reason or "")


def test_the_context_must_checkpoint_where_the_spec_says(store: LocalStore, tmp_path: Path) -> None:
    trainer, _, _, _, _ = setup(store)
    other = TrainingContext(CheckpointManager(LocalStore(tmp_path / "other"), PREFIX))
    with pytest.raises(ValueError, match="build the spec with spec_for"):
        trainer(other)


def test_a_heartbeat_of_another_protocol_version_is_an_error(store: LocalStore) -> None:
    trainer, ctx, _, clock, _ = setup(store)
    folder = control_prefix(PREFIX, "r1")
    clock.at(5, lambda: store.put(join(folder, HEARTBEAT), b'{"version": 2, "attempt": "a"}'))
    with pytest.raises(ProtocolError, match="protocol version 2, this carbonshift speaks 1"):
        trainer(ctx)


def test_stop_before_any_heartbeat_still_writes_the_marker(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    ctx.stop.set()
    clock.at(1, lambda: vm.status("stopped", 0, reason="stop marker in the checkpoint store"))
    outcome = trainer(ctx)
    assert ctx.checkpoints.stop_requested() and not outcome.completed
    assert clock.t - T0 <= 5


def test_the_first_progress_report_is_the_vms_first(store: LocalStore) -> None:
    """The Supervisor takes the first report for the run's resume point (step - 1): a fresh
    run's first heartbeat, 30 s in, must not make it look resumed at step 36."""
    trainer, ctx, vm, clock, seen = setup(store)
    clock.at(5, lambda: vm.beat(37, first_step=1))
    clock.at(10, lambda: vm.beat(80, first_step=1))
    clock.at(11, lambda: vm.status("stopped", 80))
    trainer(ctx)
    assert seen == [Progress(1, 100), Progress(37, 100), Progress(80, 100)]


def test_a_vm_that_boots_again_counts_from_zero_and_is_still_alive(store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)
    for t in range(5, 200, 5):  # seq 0 again and again, a new at_s each time
        clock.at(t, lambda t=t: vm.beat(t // 5, seq=0, at_s=T0 + t))
    clock.at(201, lambda: vm.status("completed", 100))
    assert trainer(ctx).completed and not trainer.lost()


def test_the_last_heartbeat_and_the_status_read_together_end_on_the_statuss_energy(
        store: LocalStore) -> None:
    trainer, ctx, vm, clock, seen = setup(store)

    def the_end() -> None:
        vm.beat(100, energy_j=290.0, at_s=T0 + 900)
        vm.status("completed", 100, energy_j=300.0)  # at T0 + 1000

    clock.at(5, the_end)
    assert trainer(ctx).completed
    assert trainer.meter.read_j() == 300.0 and seen == [Progress(100, 100)]
    assert [s.energy_j for s in trainer.samples()] == [290.0, 300.0]


def test_a_status_stamped_with_the_last_heartbeats_time_still_counts_its_energy(
        store: LocalStore) -> None:
    trainer, ctx, vm, clock, _ = setup(store)

    def the_end() -> None:
        vm.beat(100, energy_j=290.0, at_s=T0 + 1000)
        vm.status("completed", 100, energy_j=300.0)  # at T0 + 1000 too: the same instant

    clock.at(5, lambda: vm.beat(50, energy_j=100.0, at_s=T0 + 500))
    clock.at(10, the_end)
    assert trainer(ctx).completed
    assert [s.energy_j for s in trainer.samples()] == [100.0, 300.0]
    # On the flow's clock (the VM's reads 1000 s ahead here), the final reading is the run's
    # last sample: all 300 J in the window.
    samples = trainer.meter.samples_between(T0, T0 + 20)
    assert samples[-1] == Sample(T0 + 20, 300.0) and samples[0] == Sample(T0, 0.0)
    assert trainer.meter.pue == trainer.spec.meter.pue


GPUS = [DeviceReading(index=0, uuid="GPU-a", name="NVIDIA H100", energy_kwh=0.25, measured=True),
        DeviceReading(index=3, uuid="GPU-d", name="NVIDIA H100", energy_kwh=0.5, measured=False,
                      method="utilisation")]


@pytest.mark.parametrize("by_device", [True, False])
def test_the_vms_energy_by_gpu_reaches_the_runs_device_rows(store: LocalStore,
                                                            by_device: bool) -> None:
    trainer, ctx, _, clock, _ = setup(store)
    folder, attempt = control_prefix(PREFIX, "r1"), trainer.spec.attempt
    devices = GPUS if by_device else None  # None: an older agent, totals only
    clock.at(5, lambda: write(store, join(folder, HEARTBEAT), Heartbeat(
        attempt=attempt, seq=0, at_s=T0 + 5, energy_j=0.5 * 3.6e6, meter_label="measured: NVML",
        devices=devices and [d.model_copy(update={"energy_kwh": 0.1}) for d in devices])))
    clock.at(10, lambda: write(store, join(folder, STATUS), Status(
        attempt=attempt, state="completed", at_s=T0 + 10, step=100, total_steps=100,
        energy_j=0.75 * 3.6e6, meter_label="measured: NVML", devices=devices)))
    assert trainer(ctx).completed
    rows = devices_of(trainer.meter, 0.75)
    if not by_device:
        assert trainer.meter.devices() == []
        assert [(r.device, r.energy_kwh) for r in rows] == [("instance (total only)", 0.75)]
        return
    # The status's own reading (not the heartbeat's), each GPU a row as a local run has them.
    assert [(r.device, r.energy_kwh, r.measured, r.method) for r in rows] == [
        ("GPU 0 NVIDIA H100", 0.25, True, "NVML counter"),
        ("GPU 3 NVIDIA H100", 0.5, False, "NVML utilisation")]
    assert [d.uuid for d in trainer.meter.devices()] == ["GPU-a", "GPU-d"]
