"""GCE behind the compute port, through the real compute_v1 clients against a local fake."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.compute import AccessDenied, CapacityError, ComputeError, LaunchRequest
from carbonshift.compute.gce import GceCompute
from carbonshift.compute.gce_machine import (
    Accelerator,
    default_zones,
    instance_name,
    label_value,
    request_id,
)
from tests.fakes.gce_api import FakeGce

PROJECT = "carbonshift-test"
A, B, C = "europe-west4-a", "europe-west4-b", "europe-west4-c"
RUN = "5b3c0e1a-7f7e-4d0c-9c1a-2f1e8d6b4a01"
RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")


class Clock:
    """Time that moves only when the adapter sleeps: timeouts without waiting."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def fake() -> Iterator[FakeGce]:
    server = FakeGce()
    server.start()
    yield server
    server.stop()


def gce(fake: FakeGce, **options: Any) -> GceCompute:
    clock = Clock()
    settings: dict[str, Any] = {
        "zones": (A, B, C),
        "credentials": AnonymousCredentials(),
        "client_options": {"api_endpoint": fake.url},
        "poll_interval_s": 1.0,
        "timeout_s": 30.0,
        "clock": clock,
        "sleep": clock.sleep,
    }
    return GceCompute(PROJECT, "gcp:europe-west4", **{**settings, **options})


def launch(run_id: str = RUN, **fields: Any) -> LaunchRequest:
    values: dict[str, Any] = {
        "job": "train-resnet",
        "run_id": run_id,
        "region": "gcp:europe-west4",
        "instance_type": "a2-highgpu-1g",
    }
    return LaunchRequest(**{**values, **fields})


def metadata(body: dict[str, Any]) -> dict[str, str]:
    return {i["key"]: i["value"] for i in body["metadata"]["items"]}


# -- what is sent ---------------------------------------------------------------------------


def test_a_spot_launch_sends_labels_scheduling_metadata_and_a_request_id(fake: FakeGce) -> None:
    compute = gce(fake)
    script = "#!/bin/bash\necho train\n"
    instance = compute.provision(launch(spot=True, boot_script=script))

    [call] = fake.inserts()
    body = call.body or {}
    assert call.path == f"/compute/v1/projects/{PROJECT}/zones/{A}/instances"
    assert RFC1035.match(body["name"]) and len(body["name"]) <= 63
    assert body["machineType"] == f"zones/{A}/machineTypes/a2-highgpu-1g"
    assert "guestAccelerators" not in body  # a2 carries its GPU
    assert body["labels"] == {"carbonshift-job": "train-resnet", "carbonshift-run-id": RUN}
    assert metadata(body) == {
        "carbonshift-run-id": RUN,
        "carbonshift-job": "train-resnet",
        "startup-script": script,
    }
    assert body["scheduling"] == {
        "provisioningModel": "SPOT",
        "instanceTerminationAction": "DELETE",
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
    }
    assert body["disks"][0]["boot"] and body["disks"][0]["autoDelete"]
    assert "deeplearning-platform-release" in body["disks"][0]["initializeParams"]["sourceImage"]
    assert uuid.UUID(call.query["requestId"]).version == 5
    assert call.query["requestId"] == request_id(RUN, A, "insert")
    assert "serviceAccounts" not in body

    assert instance.run_id == RUN and instance.job == "train-resnet"
    assert (instance.provider, instance.region, instance.spot) == ("gcp", "gcp:europe-west4", True)
    assert instance.instance_type == "a2-highgpu-1g"
    assert instance.handle == f"projects/{PROJECT}/zones/{A}/instances/{body['name']}"
    assert instance.launched_at_s is not None
    # The operation was waited on through our client, at the fake, and the VM runs.
    assert fake.count("POST", "/wait") >= 1
    assert fake.instances[(PROJECT, A, body["name"])]["status"] == "RUNNING"


def test_the_heartbeat_uri_travels_in_metadata_and_comes_back(fake: FakeGce) -> None:
    # Labels cannot hold a URI (63 characters of [a-z0-9_-]): metadata does.
    compute = gce(fake)
    uri = f"gs://ckpt-bucket/train-resnet/{RUN}/remote/{RUN}/heartbeat.json"
    launched = compute.provision(launch(heartbeat_uri=uri))
    compute.provision(launch("other-run"))

    first, second = (c.body or {} for c in fake.inserts())
    assert metadata(first)["carbonshift-heartbeat"] == uri
    assert "carbonshift-heartbeat" not in metadata(second)
    assert set(first["labels"]) == {"carbonshift-job", "carbonshift-run-id"}
    assert launched.heartbeat_uri == uri
    found = gce(fake).find(RUN)  # another process, from the API alone
    assert found is not None and found.heartbeat_uri == uri
    assert {i.run_id: i.heartbeat_uri for i in gce(fake).held()} == {RUN: uri, "other-run": None}


def test_n1_machines_take_their_gpus_from_the_config(fake: FakeGce) -> None:
    compute = gce(
        fake,
        accelerators={"n1-standard-8": Accelerator("nvidia-tesla-t4", 2)},
        service_account_email="trainer@carbonshift-test.iam.gserviceaccount.com",
    )
    compute.provision(launch(instance_type="n1-standard-8"))
    body = fake.inserts()[0].body or {}
    assert body["guestAccelerators"] == [
        {"acceleratorType": f"zones/{A}/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 2}
    ]
    # On demand: no spot fields; a GPU host cannot live-migrate.
    assert body["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": True}
    assert body["serviceAccounts"][0]["email"].startswith("trainer@")

    with pytest.raises(ValueError, match="accelerators="):
        compute.provision(launch("other", instance_type="n1-standard-4"))
    with pytest.raises(ValueError, match=r"accelerators\['a2-highgpu-1g'\]"):
        gce(fake, accelerators={"a2-highgpu-1g": Accelerator("nvidia-tesla-a100", 1)})
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        Accelerator("nvidia-tesla-t4", 3)


# -- idempotency ------------------------------------------------------------------------------


def test_a_retried_provision_returns_the_same_instance(fake: FakeGce) -> None:
    first = gce(fake).provision(launch())
    # Another process (a retried task) asks again with the same run id.
    again = gce(fake).provision(launch())
    assert again == first
    assert len(fake.inserts()) == 1
    assert len(fake.names()) == 1


def test_a_lost_insert_reply_is_asked_again_and_launches_once(fake: FakeGce) -> None:
    fake.lose_replies("insert", times=2)
    instance = gce(fake).provision(launch())
    inserts = fake.inserts()
    assert len(inserts) == 3
    assert len({c.query["requestId"] for c in inserts}) == 1  # one request id for all three
    assert fake.names() == [(A, instance.handle.rsplit("/", 1)[-1])]


def test_insert_gives_up_after_three_lost_replies_and_leaves_nothing(fake: FakeGce) -> None:
    fake.lose_replies("insert", times=3)
    with pytest.raises(ComputeError, match="3 times"):
        gce(fake).provision(launch())
    assert fake.names() == []  # the instance the first insert made is rolled back


def test_a_stopped_leftover_is_replaced_by_a_fresh_instance(fake: FakeGce) -> None:
    compute = gce(fake)
    first = compute.provision(launch(spot=True))
    name = first.handle.rsplit("/", 1)[-1]
    old_id = fake.instances[(PROJECT, A, name)]["id"]
    fake.preempt(name)  # spot reclaimed with STOP: TERMINATED, still there
    assert compute.interrupted(RUN)

    again = compute.provision(launch(spot=True))
    assert again.handle == first.handle
    vm = fake.instances[(PROJECT, A, name)]
    assert vm["status"] == "RUNNING" and vm["id"] != old_id
    # GCE replays the first insert's request id (its instance is gone), so the adapter asks
    # again under an id of its own.
    ids = [c.query["requestId"] for c in fake.inserts()]
    assert ids[0] == ids[1] != ids[2]
    assert not compute.interrupted(RUN)


def test_release_then_provision_again_launches_anew(fake: FakeGce) -> None:
    compute = gce(fake)
    compute.provision(launch())
    assert compute.release(RUN)
    compute.provision(launch())
    assert len(fake.names()) == 1
    assert compute.find(RUN) is not None


# -- capacity, quota and permissions ----------------------------------------------------------


def test_a_stockout_moves_to_the_next_zone(fake: FakeGce) -> None:
    fake.fail_inserts(A, "ZONE_RESOURCE_POOL_EXHAUSTED")
    fake.drop_machine_type(B, "a2-highgpu-1g")
    instance = gce(fake).provision(launch())
    assert f"/zones/{C}/" in instance.handle
    assert [c.path.split("/")[6] for c in fake.inserts()] == [A, B, C]
    assert [z for z, _ in fake.names()] == [C]


def test_no_zone_with_capacity_is_a_capacity_error_naming_each_zone(fake: FakeGce) -> None:
    for zone in (A, B):
        fake.fail_inserts(zone, "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS")
    fake.fail_inserts(C, "ZONE_RESOURCE_POOL_EXHAUSTED", leave_instance=True)
    with pytest.raises(CapacityError) as caught:
        gce(fake).provision(launch())
    assert caught.value.region == "gcp:europe-west4"
    assert caught.value.instance_type == "a2-highgpu-1g"
    assert all(zone in str(caught.value) for zone in (A, B, C))
    assert fake.names() == []  # the instance C created before failing was deleted


def test_a_spot_instance_reclaimed_at_start_moves_to_the_next_zone(fake: FakeGce) -> None:
    fake.reclaim_at_start(A)
    instance = gce(fake).provision(launch(spot=True))
    assert f"/zones/{B}/" in instance.handle
    assert [z for z, _ in fake.names()] == [B]


def test_quota_is_regional_so_it_ends_the_region_at_once(fake: FakeGce) -> None:
    fake.fail_inserts(A, "QUOTA_EXCEEDED", "Quota 'NVIDIA_A100_GPUS' exceeded. Limit: 0.0")
    with pytest.raises(CapacityError, match="NVIDIA_A100_GPUS"):
        gce(fake).provision(launch())
    assert len(fake.inserts()) == 1

    # Quota refused at the request (HTTP 403 quotaExceeded) is capacity, not a permission.
    fake.http_error("insert", 403, "quotaExceeded", "Quota 'CPUS' exceeded.")
    with pytest.raises(CapacityError, match="CPUS"):
        gce(fake).provision(launch("run-2"))


def test_a_missing_permission_fails_fast_and_names_it(fake: FakeGce) -> None:
    fake.deny("insert", "compute.instances.create")
    with pytest.raises(AccessDenied) as caught:
        gce(fake).provision(launch())
    assert caught.value.permission == "compute.instances.create"
    assert "compute.instances.create" in str(caught.value) and "deployments/" in str(caught.value)
    assert len(fake.inserts()) == 1  # no other zone tried

    fake.deny("list", "compute.instances.list")
    with pytest.raises(AccessDenied, match="compute.instances.list"):
        gce(fake).held()


def test_a_denied_delete_names_its_permission(fake: FakeGce) -> None:
    compute = gce(fake)
    compute.provision(launch())
    fake.deny("delete", "compute.instances.delete")
    with pytest.raises(AccessDenied) as caught:
        compute.release(RUN)
    assert caught.value.permission == "compute.instances.delete"
    assert len(fake.names()) == 1


def test_no_credentials_is_access_denied_with_the_way_to_fix_it(
    fake: FakeGce, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    compute = gce(fake, credentials=None)
    with pytest.raises(AccessDenied) as caught:
        compute.provision(launch())
    assert caught.value.permission == "credentials"
    assert "gcloud auth application-default login" in str(caught.value)
    assert fake.calls == []


# -- rollback -------------------------------------------------------------------------------------


def test_an_insert_that_never_finishes_is_rolled_back(fake: FakeGce) -> None:
    fake.op_polls["insert"] = 10**9
    with pytest.raises(ComputeError, match="not done after 30 s"):
        gce(fake).provision(launch())
    assert fake.names() == []
    assert fake.count("DELETE", "") == 1


def test_an_insert_that_fails_after_creating_is_rolled_back(fake: FakeGce) -> None:
    fake.fail_inserts(A, "INTERNAL_ERROR", "Internal error.", leave_instance=True)
    with pytest.raises(ComputeError, match="INTERNAL_ERROR") as caught:
        gce(fake).provision(launch())
    assert not isinstance(caught.value, CapacityError)
    assert len(fake.inserts()) == 1  # not a capacity problem: no other zone
    assert fake.names() == []


def test_a_failed_rollback_is_reported_on_the_error(fake: FakeGce) -> None:
    fake.op_polls["insert"] = 10**9
    fake.deny("delete", "compute.instances.delete")
    with pytest.raises(ComputeError) as caught:
        gce(fake).provision(launch())
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "compute.instances.delete" in notes and "held()" in notes
    assert len(fake.names()) == 1  # left for the reaper, which finds it by label
    assert [i.run_id for i in gce(fake).held()] == [RUN]


# -- release, find, held, interrupted ----------------------------------------------------------


def test_release_find_held_and_interruptions(fake: FakeGce) -> None:
    compute = gce(fake)
    assert compute.find(RUN) is None and compute.held() == []
    assert compute.interrupted(RUN)  # nothing there: nothing runs
    first = compute.provision(launch(spot=True))
    other = compute.provision(launch("Run #2", spot=True))

    assert sorted(i.run_id for i in compute.held()) == sorted([RUN, "Run #2"])
    assert compute.find("Run #2") == other  # exact run id back from metadata
    assert compute.find("run--2") is None
    assert not compute.interrupted(RUN)

    fake.preempt(first.handle.rsplit("/", 1)[-1], vanish=True)  # reclaimed with DELETE
    assert compute.interrupted(RUN) and compute.find(RUN) is None
    fake.preempt(other.handle.rsplit("/", 1)[-1])  # reclaimed with STOP
    assert compute.interrupted("Run #2") and compute.find("Run #2") == other

    assert compute.release("Run #2") is True
    assert compute.release("Run #2") is False
    assert compute.held() == [] and fake.names() == []


def test_a_label_alone_does_not_make_an_instance_the_runs(fake: FakeGce) -> None:
    """The label is a lossy image of the run id (hashed past 63 characters); the metadata
    holds the exact id, and only that counts."""
    compute = gce(fake)
    compute.provision(launch())
    [(zone, name)] = fake.names()
    vm = fake.instances[(PROJECT, zone, name)]
    vm["metadata"]["items"] = [{"key": "carbonshift-run-id", "value": "someone-else"}]
    assert compute.find(RUN) is None and compute.interrupted(RUN)
    assert compute.release(RUN) is False and fake.names() == [(zone, name)]
    # Its name is ours (409 at insert), but it is not ours to roll back.
    with pytest.raises(ComputeError, match="another run"):
        compute.provision(launch())
    assert fake.names() == [(zone, name)] and fake.count("DELETE", "") == 0


def test_zones_the_project_lacks_are_skipped(fake: FakeGce) -> None:
    compute = gce(fake, zones=(A, "europe-west4-z"))
    fake.fail_inserts(A, "ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(CapacityError, match="europe-west4-z: no such zone"):
        compute.provision(launch())
    assert compute.held() == []


# -- names, labels, request ids, configuration ---------------------------------------------------


@given(st.text(max_size=80), st.text(max_size=80))
def test_label_values_are_valid_and_injective(a: str, b: str) -> None:
    assert LABEL.match(label_value(a))
    if a != b:
        assert label_value(a) != label_value(b)


def test_label_values_keep_plain_ids_and_escape_the_rest() -> None:
    assert label_value(RUN) == RUN
    assert label_value("Run_1") == "_52un_5f1"
    assert label_value("é") == "_c3_a9"
    long = label_value("x" * 200)
    assert len(long) == 63 and "__" in long
    assert long != label_value("x" * 201)


@given(st.text(max_size=200))
def test_instance_names_are_rfc1035_and_stable(run_id: str) -> None:
    name = instance_name(run_id)
    assert RFC1035.match(name) and len(name) <= 63
    assert name == instance_name(run_id)


def test_instance_names_differ_for_run_ids_that_slug_alike() -> None:
    assert instance_name("Run 1") != instance_name("run-1")
    assert request_id("run-1", A, "insert") != request_id("run-1", B, "insert")


def test_configuration_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="region 'aws:us-east-1'"):
        GceCompute(PROJECT, "aws:us-east-1")
    with pytest.raises(ValueError, match="zones"):
        GceCompute(PROJECT, "europe-west4", zones=("us-east1-b",))
    with pytest.raises(ValueError, match="project"):
        GceCompute("My Project", "europe-west4")
    with pytest.raises(ValueError, match="termination_action"):
        GceCompute(PROJECT, "europe-west4", termination_action="HIBERNATE")
    assert default_zones("gcp:us-east1") == ("us-east1-b", "us-east1-c", "us-east1-d")
    assert default_zones("europe-west4") == (A, B, C)


def test_a_request_for_another_region_is_refused(fake: FakeGce) -> None:
    with pytest.raises(ValueError, match="request.region"):
        gce(fake).provision(launch(region="gcp:us-central1"))
    assert fake.calls == []


def test_the_shipped_role_covers_every_call_the_adapter_makes() -> None:
    import yaml

    repo = Path(__file__).resolve().parents[2]
    role = yaml.safe_load((repo / "deployments" / "gcp-roles.yaml").read_text())
    assert set(role) == {"title", "description", "stage", "includedPermissions"}  # gcloud's
    granted = role["includedPermissions"]
    assert len(granted) == len(set(granted))
    assert all(re.fullmatch(r"(compute|iam)\.[a-zA-Z]+\.[a-zA-Z]+", p) for p in granted)
    named = set()
    for module in ("gce.py", "gce_errors.py"):
        code = (repo / "carbonshift" / "compute" / module).read_text()
        named |= set(re.findall(r'"((?:compute|iam)\.[a-zA-Z]+\.[a-zA-Z]+)"', code))
    assert {"compute.instances.create", "compute.zoneOperations.get"} <= named
    assert named <= set(granted), named - set(granted)
