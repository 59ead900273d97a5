"""The one configuration model: validation names the field and the fix, wherever it is built."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from carbonshift.cli import main
from carbonshift.config import ForecastConfig, MonitorRule, PlanningConfig, TrainingConfig
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
