"""The configuration model: one set of pydantic models for the flows' parameters and the CLI.

- `ForecastConfig`: the provider chain, its addresses, signal, cache and replay traces
  (defined with the chain building in `carbonshift.providers.factory`, which validates it).
- `MonitorRule`: the re-plan rule (defined with the decisions it drives, `carbonshift.monitor`).
- `TrainingConfig`: checkpoints, compute state, the monitor and the forecast of a training run.
- `PlanningConfig`: the planning flow's forecast and where it schedules training runs.

Secrets are in none of them: they come from the environment or Prefect Secret blocks, as
`Credentials`, and are passed to `ForecastConfig.chain`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carbonshift.checkpoint.uri import parse_store_uri
from carbonshift.compute_config import ComputeConfig
from carbonshift.monitor import MonitorRule
from carbonshift.providers.factory import ForecastConfig
from carbonshift.routing import check_routes, deployments, route

DEFAULT_TRAINING_DEPLOYMENT = "train-model/default"

__all__ = [
    "DEFAULT_TRAINING_DEPLOYMENT",
    "ComputeConfig",
    "ForecastConfig",
    "MonitorRule",
    "PlanningConfig",
    "TrainingConfig",
]


class TrainingConfig(BaseModel):
    """Where checkpoints and compute state live, how the grid is watched."""

    # A refused value may be a URI with a password in it: errors name the field, never echo it.
    model_config = ConfigDict(hide_input_in_errors=True)

    checkpoint_store: str = Field(
        default=".carbonshift/checkpoints",
        description="where checkpoints go: a folder, file:///folder, s3://bucket/prefix "
        "(optionally ?region=eu-west-1) or gs://bucket/prefix",
    )
    checkpoint_every_s: float = Field(default=1800.0, gt=0)
    keep_checkpoints: int = Field(default=3, ge=1)
    compute: ComputeConfig = Field(
        default_factory=ComputeConfig, description="where the run trains: local or cloud"
    )
    forecast: ForecastConfig = Field(
        default_factory=ForecastConfig, description="where actual intensity comes from"
    )
    monitor: MonitorRule = Field(default_factory=MonitorRule)
    options: dict[str, str] = Field(
        default_factory=dict, description="passed to the training entrypoint"
    )
    allow_fresh_start: bool = Field(
        default=False,
        description="with resume_from: start at step 0 when no valid checkpoint is there "
        "(default: fail the run)",
    )
    replans: int = Field(default=0, ge=0, description="times this job was re-planned so far")
    job_id: str | None = Field(
        default=None,
        description="the run ledger's id of the job: its first run's id (a re-plan sets it)",
    )
    previous_run_id: str | None = Field(
        default=None, description="the stopped run this one resumes (a re-plan sets it)"
    )
    submitted_at: datetime | None = Field(
        default=None,
        description="when the job was first planned: the delay counts from it (default: this "
        "run's plan time; a re-plan carries the first one on)",
    )
    training_deployment: str = Field(
        default=DEFAULT_TRAINING_DEPLOYMENT,
        pattern=r"^[^/]+/[^/]+$",
        description="deployment that runs the rest after a re-plan (PlanningConfig sets it to "
        "its own when it schedules the run)",
    )
    routes: dict[str, str] = Field(
        default_factory=dict,
        description="region pattern -> deployment for the rest after a re-plan (PlanningConfig "
        "sets its own routes, with its default deployment as '*'): the rest runs in the pool "
        "of its region",
    )

    def deployment_for(self, region: str) -> str:
        """Where the rest of this run goes when it is re-planned into `region`."""
        return route(region, self.routes, self.training_deployment)

    @model_validator(mode="before")
    @classmethod
    def _legacy_state_dir(cls, data: Any) -> Any:
        """`compute_state_dir` (before `compute`) still configures the local state folder."""
        if isinstance(data, dict) and "compute_state_dir" in data:
            data = dict(data)
            compute = dict(data.get("compute") or {})
            compute.setdefault("state_dir", data.pop("compute_state_dir"))
            data["compute"] = compute
        return data

    @field_validator("options")
    @classmethod
    def _no_secret_options(cls, options: dict[str, str]) -> dict[str, str]:
        from carbonshift.remote.protocol import no_secret_options

        return no_secret_options(options)

    @field_validator("checkpoint_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        parse_store_uri(value, field="checkpoint_store")  # scheme and bucket name, no network
        return value

    def check_reachable_store(self) -> None:
        """A cloud instance must reach the checkpoint store: a folder on this machine is only
        right for emulated instances. Checked when a run starts (and by `carbonshift train`),
        not on validation, so that the reaper and the hooks can load any run's config."""
        if self.compute.remote_runs and parse_store_uri(self.checkpoint_store).scheme == "file":
            from carbonshift.remote.emulate import emulated_instances

            if not emulated_instances():
                raise ValueError(
                    f"checkpoint_store {self.checkpoint_store!r}: a cloud instance cannot reach "
                    "a folder on this machine; give an s3:// or gs:// store"
                )


class PlanningConfig(BaseModel):
    """How the planner fetches forecasts and where it schedules training runs."""

    model_config = ConfigDict(hide_input_in_errors=True)

    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    training_deployment: str = Field(
        default=DEFAULT_TRAINING_DEPLOYMENT,
        pattern=r"^[^/]+/[^/]+$",
        description="deployment that runs each job, as flow-name/deployment-name",
    )
    routes: dict[str, str] = Field(
        default_factory=dict,
        description="region pattern -> training deployment, e.g. {'aws:*': "
        "'train-model/gpu-aws', 'gcp:europe-*': 'train-model/gpu-gcp-eu'}: each run goes to the "
        "deployment (work pool) of its chosen region; the most specific pattern wins, and a "
        "region no pattern matches goes to training_deployment",
    )
    schedule: bool = Field(default=True, description="false: plan and publish artifacts only")
    schedule_concurrency: int = Field(
        default=1,
        ge=1,
        le=32,
        description="training runs created at once: 1 suits a SQLite server (its writes queue "
        "up); a few suit a PostgreSQL server or Prefect Cloud, where each create waits on the "
        "network",
    )
    training: TrainingConfig | None = Field(
        default=None, description="config for the training runs it schedules (default: theirs)"
    )

    @field_validator("routes")
    @classmethod
    def _valid_routes(cls, routes: dict[str, str]) -> dict[str, str]:
        from carbonshift.catalog import default_catalog

        return check_routes(routes, default_catalog().regions)

    def deployment_for(self, region: str) -> str:
        """The training deployment of a run in `region` (a `provider:name` key)."""
        return route(region, self.routes, self.training_deployment)

    def training_deployments(self) -> list[str]:
        """Every deployment a training run may be sent to, the default first."""
        return deployments(self.routes, self.training_deployment)

    def training_parameters(self, deployment: str | None = None) -> dict[str, Any] | None:
        """The `config` parameter of a training run sent to `deployment` (default: the
        default one); None: theirs. It carries that deployment and these routes (with the
        default as '*'), so that a re-planned rest goes to the pool of its own region."""
        deployment = deployment or self.training_deployment
        if (
            self.training is None
            and not self.routes
            and deployment == self.training_deployment == DEFAULT_TRAINING_DEPLOYMENT
        ):
            return None
        routes = {**self.routes, "*": self.training_deployment} if self.routes else {}
        training = (self.training or TrainingConfig()).model_copy(
            update={"training_deployment": deployment, "routes": routes}
        )
        return training.model_dump(mode="json")
