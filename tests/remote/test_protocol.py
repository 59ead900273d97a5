"""The control files: what a spec may hold, how files are read back, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.remote.protocol import (
    DeviceReading,
    Heartbeat,
    MeterSpec,
    ProtocolError,
    RunSpec,
    Status,
    control_prefix,
    open_at,
    read,
    spec_for,
    write,
)
from carbonshift.training import TrainingContext

BASE = {"job": "j", "run_id": "r-1", "provider": "aws", "entrypoint": "m:f",
        "checkpoint_store": "s3://bucket"}


def test_spec_for_takes_the_contexts_checkpoints_and_options(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    ctx = TrainingContext(CheckpointManager(store, "job/run", keep=5), checkpoint_every_s=60,
                          options={"steps": "10"}, resume_from="file:///x/ckpt-1",
                          allow_fresh_start=True)
    spec = spec_for(ctx, job="job", run_id="run", provider="gcp", entrypoint="m:f",
                    meter=MeterSpec(kind="auto", power_w=300, label="1 x A10G"))
    assert (spec.checkpoint_store, spec.checkpoint_prefix, spec.keep) == (store.uri, "job/run", 5)
    assert spec.options == {"steps": "10"} and spec.checkpoint_every_s == 60
    assert spec.resume_from == "file:///x/ckpt-1" and spec.allow_fresh_start
    assert spec.attempt != spec_for(ctx, job="job", run_id="run", provider="gcp",
                                    entrypoint="m:f").attempt


@pytest.mark.parametrize("name", ["api_key", "WANDB_API_KEY", "hf_token", "db_password",
                                  "aws_secret", "credentials"])
def test_a_credential_cannot_ride_in_the_options(name: str) -> None:
    with pytest.raises(ValidationError, match=f"options.{name}: looks like a credential"):
        RunSpec.model_validate({**BASE, "options": {name: "x"}})


def test_a_password_in_a_store_uri_is_refused() -> None:
    with pytest.raises(ValidationError, match="carries a user or password") as e:
        RunSpec.model_validate({**BASE, "checkpoint_store": "https://me:hunter2@host/b"})
    assert "hunter2" not in str(e.value).split("input_value")[0]
    with pytest.raises(ValidationError, match="carries a user or password"):
        RunSpec.model_validate({**BASE, "resume_from": "s3://key@bucket/x"})


@pytest.mark.parametrize("run_id", ["", "../up", "a/b", "-x", "with space"])
def test_a_run_id_must_be_a_plain_name(run_id: str) -> None:
    with pytest.raises(ValidationError, match="run_id"):
        RunSpec.model_validate({**BASE, "run_id": run_id})


def test_unknown_fields_and_bad_intervals_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        RunSpec.model_validate({**BASE, "aws_secret_access_key": "x"})
    with pytest.raises(ValidationError, match="heartbeat_every_s"):
        RunSpec.model_validate({**BASE, "heartbeat_every_s": 0})


def test_read_back_and_what_is_not_a_control_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert read(store, "r/heartbeat.json", Heartbeat) is None
    beat = Heartbeat(attempt="a", seq=3, at_s=1.0, step=2, total_steps=9, energy_j=5.0)
    write(store, "r/heartbeat.json", beat)
    assert read(store, "r/heartbeat.json", Heartbeat) == beat
    store.put("r/status.json", b"not json")
    with pytest.raises(ProtocolError, match="not a valid Status"):
        read(store, "r/status.json", Status)
    store.put("r/status.json", b'{"version": 7, "state": "completed"}')
    with pytest.raises(ProtocolError, match="protocol version 7, this carbonshift speaks 1"):
        read(store, "r/status.json", Status)


def test_control_files_live_per_run_under_the_runs_prefix() -> None:
    assert control_prefix("job/run-1", "run-2") == "job/run-1/remote/run-2"
    assert control_prefix("", "run-2") == "remote/run-2"


def test_open_at_splits_a_uri_into_store_and_key(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "spec.json").write_text("{}")
    store, key = open_at(f"file://{tmp_path}/a/spec.json")
    assert store.get(key) == b"{}"
    with pytest.raises(ValueError, match="name an object in a store"):
        open_at("spec.json")


def test_energy_by_device_is_optional_so_an_older_agents_messages_still_parse() -> None:
    old_beat = '{"version": 1, "attempt": "a", "seq": 3, "at_s": 10.0, "energy_j": 5.0}'
    old_status = '{"version": 1, "attempt": "a", "state": "completed", "at_s": 11.0}'
    assert Heartbeat.model_validate_json(old_beat).devices is None
    assert Status.model_validate_json(old_status).devices is None
    gpus = [DeviceReading(index=0, uuid="GPU-a", name="H100", energy_kwh=1.5, measured=True),
            DeviceReading(index=1, energy_kwh=0.5, measured=False, method="utilisation")]
    beat = Heartbeat(attempt="a", seq=1, at_s=1.0, energy_j=7.2e6, devices=gpus)
    assert Heartbeat.model_validate_json(beat.model_dump_json()) == beat
    status = Status(attempt="a", state="stopped", at_s=2.0, devices=gpus)
    assert Status.model_validate_json(status.model_dump_json()).devices == gpus
    with pytest.raises(ValidationError, match="energy_kwh"):
        DeviceReading(index=0, energy_kwh=-1.0, measured=True)
    with pytest.raises(ValidationError, match="method"):
        DeviceReading(index=0, energy_kwh=1.0, measured=True, method="guess")  # type: ignore[arg-type]
