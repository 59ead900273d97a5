"""The reaper's reading of heartbeats, where instances record them, and its report: a heartbeat
is found at the URI the launch recorded (a folder, S3); what cannot be read is logged and keeps
its instance; one failed release never stops the others."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import boto3
import pytest

from carbonshift.checkpoint import LocalStore
from carbonshift.checkpoint.s3 import S3Store
from carbonshift.compute import ComputeError, Instance, LaunchRequest, LocalCompute
from carbonshift.reap import UNTOLD, Reaped, RunState, heartbeat_reader, markdown, reap, to_reap
from carbonshift.remote import BootstrapConfig, EmulatedInstances, RemoteCompute
from carbonshift.remote.protocol import HEARTBEAT, Heartbeat, control_prefix, join, write
from tests.remote.fakes import Vm, remote_run

NOW = 1_800_000_000.0


def instance(run_id: str, heartbeat_uri: str | None, launched_ago_s: float = 3600.0) -> Instance:
    return Instance(run_id, "aws", "aws:us-east-1", "g5.xlarge", f"i-{run_id}", "j",
                    launched_at_s=NOW - launched_ago_s, heartbeat_uri=heartbeat_uri)


def heartbeat(at_s: float) -> Heartbeat:
    return Heartbeat(attempt="a", seq=1, at_s=at_s)


def test_a_heartbeat_in_a_folder_is_read_at_its_uri(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write(store, "job/r1/remote/r1/heartbeat.json", heartbeat(NOW - 42))
    written_s = (tmp_path / "store/job/r1/remote/r1/heartbeat.json").stat().st_mtime
    read = heartbeat_reader(local_ok=True)
    # The store's clock, not the VM's: its at_s (NOW - 42) is what the VM believed.
    assert read(instance("r1", f"{store.uri}/job/r1/remote/r1/heartbeat.json")) == written_s
    # Without local_ok (cloud instances) a folder URI is refused: a tag must not make the
    # reaper read its own disk.
    assert heartbeat_reader()(instance("r1", f"{store.uri}/job/r1/remote/r1/heartbeat.json")) \
        is UNTOLD
    # Not written yet (a VM still booting): None, so its launch time counts.
    assert read(instance("r2", f"{store.uri}/job/r2/remote/r2/heartbeat.json")) is None
    assert read(instance("r3", f"{tmp_path}/nowhere/heartbeat.json")) is None
    assert not (tmp_path / "nowhere").exists()  # a reader makes no folders


@pytest.mark.integration
def test_a_heartbeat_on_s3_is_read_at_its_uri(aws: str) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="beats")
    before = time.time()
    write(S3Store("beats", "ckpt"), "r1/heartbeat.json", heartbeat(NOW - 7))
    read = heartbeat_reader()
    written_s = read(instance("r1", "s3://beats/ckpt/r1/heartbeat.json"))
    assert isinstance(written_s, float) and before - 2 <= written_s <= time.time() + 1
    assert read(instance("r2", "s3://beats/ckpt/r2/heartbeat.json")) is None


def test_what_cannot_be_read_is_untold_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStore(tmp_path)
    store.put("garbage/heartbeat.json", b"{not json")
    store.put("future/heartbeat.json", b'{"version": 9, "at_s": 1}')
    read = heartbeat_reader(local_ok=True)
    caplog.set_level(logging.INFO, logger="carbonshift.reap")
    cases = {
        "none": None,
        "garbage": f"{store.uri}/garbage/heartbeat.json",
        "future": f"{store.uri}/future/heartbeat.json",
        "scheme": "ftp://host/run/heartbeat.json",
        "bucket": "s3://Not_A_Bucket/heartbeat.json",
        "no-object": "heartbeat.json",
    }
    for run_id, uri in cases.items():
        assert read(instance(run_id, uri)) is UNTOLD, run_id
    text = caplog.text
    assert "i-none (run none) records no heartbeat" in text
    assert "not a valid Heartbeat" in text and "protocol version 9" in text
    assert "scheme 'ftp'" in text and "names no object" in text


def test_untold_keeps_an_instance_unless_its_run_ended() -> None:
    found = to_reap(
        [instance("ended", None), instance("active", None), instance("unknown", None),
         instance("silent", None)],
        now_s=NOW, stale_after_s=900,
        run_state=lambda r: {"ended": (RunState.ENDED, "Failed"),
                             "active": (RunState.ACTIVE, "Running"),
                             "unknown": (RunState.UNKNOWN, "")}.get(r),
        heartbeat_at=lambda i: UNTOLD,
    )
    assert [(r.instance.run_id, r.reason) for r in found] == [("ended", "run ended is Failed")]


class Flaky(LocalCompute):
    """Refuses to release one run, as a provider may (a permission, a throttle)."""

    def release(self, run_id: str) -> bool:
        if run_id == "stuck":
            raise ComputeError("aws:us-east-1: TerminateInstances refused")
        return super().release(run_id)


def test_one_failed_release_does_not_stop_the_others(tmp_path: Path) -> None:
    compute = Flaky(tmp_path)
    held = [compute.provision(LaunchRequest("j", r, "aws:us-east-1", "g5.xlarge"))
            for r in ("a", "stuck", "b")]
    done = reap(compute, [Reaped(i, "why") for i in held])
    assert [(r.instance.run_id, r.released, r.error) for r in done] == [
        ("a", True, None),
        ("stuck", False, "ComputeError: aws:us-east-1: TerminateInstances refused"),
        ("b", True, None),
    ]
    assert [i.run_id for i in compute.held()] == ["stuck"]
    record = done[1].record()
    assert record == {"region": "aws:us-east-1", "handle": "localhost", "run_id": "stuck",
                      "job": "j", "reason": "why", "released": False,
                      "error": "ComputeError: aws:us-east-1: TerminateInstances refused"}


def test_the_report_lists_each_instance_and_each_region_not_swept() -> None:
    records = [
        Reaped(instance("r1", None), "run r1 is Crashed", released=True).record(),
        Reaped(instance("r|2", None), "last heartbeat 30 min ago").record(),
        Reaped(instance("r3", None), "x", error="ComputeError: no\nway").record(),
    ]
    text = markdown(records, {"gcp:europe-west4": "AccessDenied: missing permission x"})
    lines = text.splitlines()
    assert lines[2] == "| region | instance | run | job | why | terminated |"
    assert lines[4] == "| aws:us-east-1 | i-r1 | r1 | j | run r1 is Crashed | yes |"
    assert lines[5] == (
        r"| aws:us-east-1 | i-r\|2 | r\|2 | j | last heartbeat 30 min ago | already gone |")
    assert lines[6].endswith("| **failed**: ComputeError: no way |")
    assert "**gcp:europe-west4 not swept:** AccessDenied: missing permission x" in text
    assert markdown([], {}) == "# Reaped instances\n\nNothing to terminate.\n"


def test_a_remote_run_records_where_its_vm_beats(tmp_path: Path) -> None:
    """RemoteCompute puts the heartbeat's URI into the launch; the reaper, knowing no store,
    reads the VM's heartbeat there."""
    store = LocalStore(tmp_path / "store")
    remote, _ = remote_run(store, "tiny/r1", "r1", 10)
    local = LocalCompute(tmp_path / "compute")
    compute = RemoteCompute(local, remote, BootstrapConfig())
    launched = compute.provision(LaunchRequest("tiny job", "r1", "aws:us-east-1", "g5.xlarge"))

    uri = f"{store.uri}/{join(control_prefix('tiny/r1', 'r1'), HEARTBEAT)}"
    assert launched.heartbeat_uri == compute.heartbeat_uri == uri
    (held,) = LocalCompute(tmp_path / "compute").held()  # another process: the reaper
    read = heartbeat_reader(local_ok=True)
    assert read(held) is None  # published, no heartbeat yet
    before = time.time()
    Vm(store, "tiny/r1", remote.spec).beat(3, at_s=NOW - 5)
    written_s = read(held)
    assert isinstance(written_s, float) and before - 2 <= written_s <= time.time() + 1


def test_emulated_instances_pass_the_heartbeat_uri_through(tmp_path: Path) -> None:
    emulated = EmulatedInstances(LocalCompute(tmp_path / "compute"), tmp_path / "emulated")
    request = LaunchRequest("j", "r1", "aws:us-east-1", "g5.xlarge",
                            heartbeat_uri="s3://b/j/r1/remote/r1/heartbeat.json")
    assert emulated.provision(request).heartbeat_uri == request.heartbeat_uri
    assert [i.heartbeat_uri for i in emulated.held()] == [request.heartbeat_uri]
    found = emulated.find("r1")
    assert found is not None and found.heartbeat_uri == request.heartbeat_uri
