"""The Supervisor, unchanged, running a remote trainer on an emulated instance: RemoteCompute puts
the boot script into the launch request, the remote meter stands in for the local one, and the
monitor's stop reaches the VM through the store's STOP marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.checkpoint import LocalStore
from carbonshift.compute import LaunchRequest, LocalCompute
from carbonshift.monitor import MonitorRule, Verdict
from carbonshift.remote import BootstrapConfig, EmulatedInstances, RemoteCompute, RemoteTrainer
from carbonshift.run import RunReport, Supervisor
from carbonshift.training import Progress
from tests.helpers import job
from tests.remote.fakes import remote_run
from tests.run.fakes import ScriptedActuals, placement

pytestmark = pytest.mark.slow
PREFIX = "tiny/r1"
RULE = MonitorRule(interval_s=0.05, grace_s=3600)  # ticks often; the grid rule never fires


def supervise(tmp_path: Path, steps: int, interrupt_at_step: int | None = None) -> tuple[
        RunReport, RemoteTrainer, EmulatedInstances]:
    store = LocalStore(tmp_path / "store")
    local = LocalCompute(tmp_path / "compute")

    def lose_the_instance(p: Progress) -> None:  # LocalCompute's marker: the instance is lost
        if interrupt_at_step is not None and p.step >= interrupt_at_step:
            (tmp_path / "compute" / "r1.interrupted").touch()

    remote, ctx = remote_run(store, PREFIX, "r1", steps, on_progress=lose_the_instance)
    emulated = EmulatedInstances(local, tmp_path / "emulated")
    compute = RemoteCompute(emulated, remote, BootstrapConfig())
    supervisor = Supervisor(compute=compute, meter=remote.meter, actuals=ScriptedActuals(None),
                            rule=RULE)
    report = supervisor.run(job("tiny"), placement(), "r1", ctx, remote)
    return report, remote, emulated


def test_a_supervised_remote_run_completes_and_accounts_the_vms_energy(tmp_path: Path) -> None:
    report, remote, emulated = supervise(tmp_path, 200)
    assert report.error is None and report.released
    outcome = report.outcome
    assert outcome is not None and outcome.completed and outcome.step == 200
    assert report.started_step == 0  # a fresh run, though its first heartbeat came later
    assert report.meter_label == "estimate: test 100 W (on the instance)"
    assert report.accounting.energy_kwh > 0
    assert report.samples[-1].energy_j == remote.meter.read_j()
    assert emulated.held() == [] and not list((tmp_path / "emulated").glob("*.json"))


def test_the_monitors_stop_reaches_the_vm_through_the_store(tmp_path: Path) -> None:
    report, remote, _ = supervise(tmp_path, 100_000, interrupt_at_step=50)
    assert report.verdict is not None and report.verdict.verdict is Verdict.STOP
    assert report.replan and report.released
    outcome = report.outcome
    assert outcome is not None and not outcome.completed
    assert outcome.step >= 50 and outcome.checkpoint_uri
    assert outcome.stopped_reason == "stop marker in the checkpoint store"
    assert not remote.lost()


def test_a_remote_compute_launches_only_its_own_run(tmp_path: Path) -> None:
    remote, _ = remote_run(LocalStore(tmp_path / "store"), PREFIX, "r1", 10)
    compute = RemoteCompute(LocalCompute(tmp_path / "compute"), remote, BootstrapConfig())
    with pytest.raises(ValueError, match="make one per run"):
        compute.provision(LaunchRequest("tiny", "r2", "aws:us-east-1", "g5.xlarge"))
    assert compute.held() == [] and compute.name == "local"
