"""The emulation switch: a local process runs the boot script for an instance that an emulator
(or this machine) launched, and ends with it, whoever releases it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbonshift.checkpoint import LocalStore
from carbonshift.compute import LaunchRequest, LocalCompute
from carbonshift.remote import (
    BootstrapConfig,
    EmulatedInstances,
    emulated_instances,
    render_bootstrap,
)
from carbonshift.remote.protocol import (
    HEARTBEAT,
    STATUS,
    Heartbeat,
    Status,
    control_prefix,
    join,
    read,
)
from tests.helpers import wait_until
from tests.remote.fakes import group_alive, remote_run

PREFIX = "tiny/r1"
REPO = Path(__file__).resolve().parents[2]


def test_the_switch_is_explicit() -> None:
    assert not emulated_instances({})
    assert not emulated_instances({"CARBONSHIFT_EMULATE_INSTANCES": "0"})
    assert emulated_instances({"CARBONSHIFT_EMULATE_INSTANCES": " 1 "})
    with pytest.raises(ValueError, match="CARBONSHIFT_EMULATE_INSTANCES='yes': set it to 1"):
        emulated_instances({"CARBONSHIFT_EMULATE_INSTANCES": "yes"})


def test_the_stand_ins_need_a_folder_of_their_own(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a folder of their own"):
        EmulatedInstances(LocalCompute(tmp_path / "state"), tmp_path / "state")


def test_no_boot_script_no_process(tmp_path: Path) -> None:
    emulated = EmulatedInstances(LocalCompute(tmp_path / "compute"), tmp_path / "emulated")
    instance = emulated.provision(LaunchRequest("j", "r0", "aws:us-east-1", "g5.xlarge"))
    assert instance.handle == "localhost" and not (tmp_path / "emulated" / "r0.json").exists()
    assert emulated.release("r0") and not emulated.release("r0")


def launch(tmp_path: Path, steps: int = 100_000) -> tuple[EmulatedInstances, LocalStore, int,
                                                            LaunchRequest]:
    """An emulated instance running the real bootstrap of a tiny_train run; (its pid)."""
    store = LocalStore(tmp_path / "store")
    remote, _ = remote_run(store, PREFIX, "r1", steps)
    remote.publish()
    script = render_bootstrap(BootstrapConfig(), remote.spec_uri, "tiny job", "r1")
    request = LaunchRequest("tiny job", "r1", "aws:us-east-1", "g5.xlarge", boot_script=script)
    emulated = EmulatedInstances(LocalCompute(tmp_path / "compute"), tmp_path / "emulated")
    emulated.provision(request)
    pid = json.loads((tmp_path / "emulated" / "r1.json").read_text())["pid"]
    folder = control_prefix(PREFIX, "r1")
    wait_until(lambda: (b := read(store, join(folder, HEARTBEAT), Heartbeat)) and b.step > 0,
               timeout_s=60, what=lambda: (tmp_path / "emulated" / "r1" / "bootstrap.log")
               .read_text(), poll_s=0.05)
    return emulated, store, pid, request


@pytest.mark.slow
def test_provision_runs_the_bootstrap_and_release_ends_it(tmp_path: Path) -> None:
    emulated, store, pid, request = launch(tmp_path)
    assert group_alive(pid)
    log = (tmp_path / "emulated" / "r1" / "bootstrap.log").read_text()
    assert "emulated instance: nothing installed" in log and "starting the agent" in log
    assert emulated.provision(request).run_id == "r1"  # a retry: no second process
    assert len(list((tmp_path / "emulated").glob("*.json"))) == 1
    assert emulated.release("r1")
    assert not group_alive(pid) and not (tmp_path / "emulated" / "r1.json").exists()
    assert emulated.compute.find("r1") is None and not emulated.release("r1")
    # SIGTERM first: the agent checkpointed on the way out, as on a VM that shuts down
    status = read(store, join(control_prefix(PREFIX, "r1"), STATUS), Status)
    assert status is not None and status.state == "interrupted"
    assert status.reason is not None and status.reason.startswith("SIGTERM")


@pytest.mark.slow
def test_a_reaper_in_another_process_ends_the_stand_in(tmp_path: Path) -> None:
    emulated, _, pid, _ = launch(tmp_path)
    code = ("import sys; from pathlib import Path\n"
            "from carbonshift.compute import LocalCompute\n"
            "from carbonshift.remote import EmulatedInstances\n"
            "e = EmulatedInstances(LocalCompute(Path(sys.argv[1])), Path(sys.argv[2]))\n"
            "print(e.release('r1'))\n")
    reaper = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "compute"), str(tmp_path / "emulated")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert reaper.stdout.strip() == "True", reaper.stderr
    assert not group_alive(pid)
    assert not emulated.release("r1")  # already gone; our child is waited for


@pytest.mark.slow
def test_a_stand_in_whose_instance_is_gone_is_ended(tmp_path: Path) -> None:
    emulated, _, pid, _ = launch(tmp_path)
    assert emulated.compute.release("r1")  # terminated behind the wrapper's back
    assert emulated.held() == []
    assert not group_alive(pid) and not (tmp_path / "emulated" / "r1.json").exists()


class InRegion(LocalCompute):
    """This machine as one region's compute (the cloud adapters carry a `region`)."""

    def __init__(self, state_dir: Path, region: str) -> None:
        super().__init__(state_dir)
        self.region = region


@pytest.mark.slow
def test_a_look_at_another_region_leaves_this_regions_stand_in_alone(tmp_path: Path) -> None:
    emulated, _, pid, _ = launch(tmp_path)  # a us-east-1 stand-in, recorded with its region
    west = EmulatedInstances(InRegion(tmp_path / "west", "aws:us-west-2"), tmp_path / "emulated")
    assert west.held() == [] and west.find("r1") is None
    assert group_alive(pid)  # still training
    east = EmulatedInstances(InRegion(tmp_path / "compute", "aws:us-east-1"),
                             tmp_path / "emulated")
    assert east.release("r1") and not group_alive(pid)
    assert not emulated.release("r1")  # already gone; the launching wrapper waits for its child
