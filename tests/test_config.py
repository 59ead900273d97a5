"""The one configuration model: validation names the field and the fix, wherever it is built."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from carbonshift.cli import main
from carbonshift.config import (
    ComputeConfig,
    ForecastConfig,
    MonitorRule,
    PlanningConfig,
    TrainingConfig,
)
from carbonshift.providers import ProviderSettings


@pytest.mark.parametrize(
    ("forecast", "loc", "message"),
    [
        (
            {"providers": ["replay", "bogus"]},
            ("forecast", "providers", 1),
            "unknown provider 'bogus': use one of electricitymaps",
        ),
        ({"providers": []}, ("forecast", "providers"), "empty: give a provider chain"),
        (
            {"providers": ["carbon-aware-sdk"]},
            ("forecast", "base_urls"),
            "carbon-aware-sdk is self-hosted: give its address as base_urls",
        ),
    ],
)
@pytest.mark.parametrize("model", [PlanningConfig, TrainingConfig])
def test_a_bad_chain_is_refused_by_every_model_that_holds_one(
    model: type[PlanningConfig | TrainingConfig],
    forecast: dict[str, object],
    loc: tuple[object, ...],
    message: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"forecast": forecast})
    (error,) = caught.value.errors()
    assert error["loc"] == loc
    assert error["msg"].startswith(message)


def test_a_good_chain_is_kept_with_names_trimmed() -> None:
    config = ForecastConfig(
        providers=[" carbon-aware-sdk", "static "],
        base_urls={"carbon-aware-sdk": "http://sdk.local"},
    )
    assert config.providers == ["carbon-aware-sdk", "static"]


def test_the_monitor_rule_keeps_the_documented_names_and_bounds() -> None:
    rule = TrainingConfig.model_validate({"monitor": {"first_hour_s": 1800, "grace_s": 0}}).monitor
    assert isinstance(rule, MonitorRule)
    assert (rule.first_hour_s, rule.grace_s, rule.threshold) == (1800.0, 0.0, 0.20)
    with pytest.raises(ValidationError, match="interval_s"):
        MonitorRule(interval_s=0)
    with pytest.raises(ValidationError, match="threshold"):
        MonitorRule(threshold=-0.1)


def test_a_training_config_survives_the_trip_through_a_flow_parameter() -> None:
    config = TrainingConfig(
        monitor=MonitorRule(interval_s=2),
        replans=1,
        forecast=ForecastConfig(providers=["replay"], traces_dir="/t"),
    )
    again = TrainingConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert PlanningConfig.model_json_schema()["$defs"]["MonitorRule"]["properties"].keys() == {
        "threshold",
        "first_hour_s",
        "window_s",
        "grace_s",
        "interval_s",
        "max_replans",
    }


def test_provider_settings_repeat_no_field_of_the_forecast_config() -> None:
    wiring = {f.name for f in dataclasses.fields(ProviderSettings)}
    assert wiring & set(ForecastConfig.model_fields) == set()
    assert "forecast" in wiring


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (",", "carbonshift: error: --provider: give a provider or a comma-separated chain of: "),
        ("static,tea-leaves", "carbonshift: error: --provider: unknown provider 'tea-leaves': use"),
        (
            "carbon-aware-sdk",
            "carbonshift: error: --provider carbon-aware-sdk is self-hosted: give "
            "its address with --base-url",
        ),
    ],
)
def test_the_cli_refuses_a_bad_chain_in_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], provider: str, expected: str
) -> None:
    code = main(["forecast", "--provider", provider, "--zone", "DE", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_the_planners_deployment_reaches_the_runs_it_schedules() -> None:
    """A re-planned rest is scheduled on the deployment its run came from, not the default."""
    assert PlanningConfig().training_parameters() is None  # the runs' own defaults
    params = PlanningConfig(training_deployment="train-model/gpu").training_parameters()
    assert params is not None
    assert TrainingConfig.model_validate(params).training_deployment == "train-model/gpu"
    mine = TrainingConfig(checkpoint_every_s=60, training_deployment="train-model/default")
    params = PlanningConfig(
        training_deployment="train-model/gpu", training=mine
    ).training_parameters()
    assert params is not None and params["checkpoint_every_s"] == 60
    assert params["training_deployment"] == "train-model/gpu"


@pytest.mark.parametrize("raw", [
    {"checkpoint_store": "s3://AKIAEXAMPLE:hunter2secret@bucket/x"},
    {"checkpoint_store": "gs://bucket/x", "compute": {"kind": "cloud", "bootstrap": {
        "install": ["https://user:hunter2secret@pypi.example/carbonshift.whl"]}}},
    {"compute": {"kind": "cloud", "aws": {"ami": "hunter2secret"}}},
])
def test_a_refused_setting_is_named_and_never_echoed(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as error:
        TrainingConfig.model_validate(raw)
    assert "hunter2secret" not in str(error.value)
    assert error.value.errors()[0]["loc"]  # the field is named


def test_a_cloud_run_needs_a_store_the_instance_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARBONSHIFT_EMULATE_INSTANCES", raising=False)
    folder = TrainingConfig.model_validate({"compute": {"kind": "cloud"}})  # the reaper loads it
    with pytest.raises(ValueError, match="cannot reach a folder"):
        folder.check_reachable_store()
    TrainingConfig.model_validate(
        {"compute": {"kind": "cloud"}, "checkpoint_store": "s3://bucket/x"}).check_reachable_store()
    TrainingConfig().check_reachable_store()  # local compute: a folder is right
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")  # the stand-in VM is this machine
    folder.check_reachable_store()


def test_the_legacy_state_dir_still_configures_local_compute(tmp_path: Path) -> None:
    cfg = TrainingConfig.model_validate({"compute_state_dir": str(tmp_path)})
    assert cfg.compute.state_dir == str(tmp_path) and cfg.compute.kind == "local"


def test_compute_for_routes_by_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from carbonshift.compute import LocalCompute
    from carbonshift.compute.ec2 import Ec2Compute
    from carbonshift.compute.gce import GceCompute
    from carbonshift.remote import EmulatedInstances

    monkeypatch.delenv("CARBONSHIFT_EMULATE_INSTANCES", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    local = TrainingConfig.model_validate({"compute": {"state_dir": str(tmp_path)}})
    assert isinstance(local.compute.compute_for("aws:us-east-1"), LocalCompute)
    cloud = ComputeConfig.model_validate({"kind": "cloud", "state_dir": str(tmp_path),
                                          "gcp": {"project": "proj-123", "anonymous": True,
                                                  "api_endpoint": "http://127.0.0.1:9"}})
    assert isinstance(cloud.compute_for("aws:eu-west-2"), Ec2Compute)
    assert isinstance(cloud.compute_for("gcp:europe-west4"), GceCompute)
    with pytest.raises(ValueError, match="compute.gcp.project"):
        ComputeConfig(kind="cloud").compute_for("gcp:europe-west4")
    with pytest.raises(ValueError, match="aws: or gcp:"):
        cloud.compute_for("azure:westeurope")
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    assert isinstance(cloud.compute_for("aws:eu-west-2"), EmulatedInstances)
    with pytest.raises(ValidationError, match="stop_wait_s"):
        ComputeConfig.model_validate({"remote": {"stop_wait_s": 200, "stop_grace_s": 100}})


def test_the_local_pue_defaults_to_none_added_and_takes_a_facilitys() -> None:
    assert ComputeConfig().local_pue == 1.0  # no facility overhead known for this machine
    assert TrainingConfig.model_validate({"compute": {"local_pue": 1.4}}).compute.local_pue == 1.4
    assert ComputeConfig(local_pue=3.0).local_pue == 3.0  # the bound itself is allowed


@pytest.mark.parametrize("pue", [0.0, -1.2, 0.95, 3.01, 12.0, float("nan"), float("inf")])
def test_a_local_pue_outside_what_a_facility_reaches_is_refused_naming_it(pue: float) -> None:
    with pytest.raises(ValidationError) as error:
        TrainingConfig.model_validate({"compute": {"local_pue": pue}})
    (first,) = error.value.errors()
    assert first["loc"] == ("compute", "local_pue")
    assert "compute.local_pue" in first["msg"] and "give a PUE from 1.0" in first["msg"]


ROUTES = {"aws:*": "train-model/gpu-aws", "gcp": "train-model/gpu-gcp",
          "aws:eu-west-2": "train-model/gpu-london"}


def test_routes_send_each_region_to_its_pools_deployment_and_ride_along_to_the_rest() -> None:
    cfg = PlanningConfig(routes=ROUTES, training_deployment="train-model/default")
    assert cfg.deployment_for("aws:us-east-1") == "train-model/gpu-aws"
    assert cfg.deployment_for("aws:eu-west-2") == "train-model/gpu-london"  # exact beats glob
    assert cfg.deployment_for("gcp:europe-west4") == "train-model/gpu-gcp"  # bare provider
    assert cfg.deployment_for("azure:westeurope") == "train-model/default"  # unmatched
    assert cfg.training_deployments() == ["train-model/default", "train-model/gpu-aws",
                                          "train-model/gpu-gcp", "train-model/gpu-london"]
    params = cfg.training_parameters("train-model/gpu-aws")
    assert params is not None and params["training_deployment"] == "train-model/gpu-aws"
    rest = TrainingConfig.model_validate(params)  # what the run's re-planned rest routes by
    assert rest.deployment_for("gcp:us-central1") == "train-model/gpu-gcp"
    assert rest.deployment_for("aws:eu-west-2") == "train-model/gpu-london"
    assert rest.deployment_for("azure:westeurope") == "train-model/default"
    assert PlanningConfig().training_parameters() is None  # no routes: the runs' own config


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"aws:*": "gpu-aws"}, re.escape("routes['aws:*']: 'gpu-aws' is not a deployment: "
                                         "give flow-name/deployment-name")),
        ({"aws us-east-1": "train-model/a"}, "routes: pattern 'aws us-east-1' is not "
                                             "provider:region"),
        ({"asw:*": "train-model/a"}, "routes: pattern 'asw:\\*' matches no region in the "
                                     "catalog"),
        ({"aws:us-*": "train-model/a", "aws:*t-1": "train-model/b"},
         "routes: 'aws:.*' and 'aws:.*' both match aws:.* equally: make one more specific"),
        ({"aws": "train-model/a", "aws:*": "train-model/b"}, "given twice"),
    ],
)
def test_bad_routes_are_refused_naming_the_field_and_the_fix(
    routes: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as raised:
        PlanningConfig(routes=routes)
    assert raised.value.errors()[0]["loc"] == ("routes",)
