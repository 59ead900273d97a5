"""What the flow and a remote run say to each other, through the object store only.

Under a run's prefix (where its checkpoints live), per run id::

    <prefix>/remote/<run id>/spec.json       the flow writes it: what to train, where (RunSpec)
    <prefix>/remote/<run id>/heartbeat.json  the VM rewrites it: alive, progress, energy
    <prefix>/remote/<run id>/status.json     the VM writes it once, at the end
    <prefix>/STOP                            the flow asks for a stop (the CheckpointManager's
                                             stop marker, which the Harness watches too)

The run id is in the path because a resumed run continues in its predecessor's checkpoint folder:
the old run's status must not answer for the new one. `attempt` ties a heartbeat and a status to
the spec that started them (a retried run id never reads a stale file as its own).
"""

from __future__ import annotations

import re
import uuid
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carbonshift.checkpoint import ObjectStore, open_store
from carbonshift.training import TrainingContext

VERSION: Literal[1] = 1
SPEC, HEARTBEAT, STATUS = "spec.json", "heartbeat.json", "status.json"
Provider = Literal["aws", "gcp", "local"]
State = Literal["completed", "stopped", "interrupted", "failed"]
# Option names that usually hold a credential: the spec is plain text in the store.
_SECRET_NAME = re.compile(r"secret|token|passw|credential|api[_-]?key|private[_-]?key", re.I)

M = TypeVar("M", bound=BaseModel)


class ProtocolError(Exception):
    """A control file that is not what this version of carbonshift writes."""


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def control_prefix(prefix: str, run_id: str) -> str:
    """Where a run's spec, heartbeat and status live under the run's prefix."""
    return join(prefix, "remote", run_id)


def open_at(uri: str) -> tuple[ObjectStore, str]:
    """The store holding the object a URI names, and its key there."""
    folder, _, name = uri.rstrip("/").rpartition("/")
    if not name or not folder:
        raise ValueError(f"{uri!r}: name an object in a store, e.g. s3://bucket/run/spec.json")
    store, base = open_store(folder)
    return store, join(base, name)


def no_secret_options(options: dict[str, str]) -> dict[str, str]:
    """Options travel in flow parameters, the spec and the command's environment, all plain
    text: one named like a credential is refused, naming it (its value is never shown)."""
    for name in options:
        if _SECRET_NAME.search(name):
            raise ValueError(
                f"options.{name}: looks like a credential, and options are stored in plain text "
                "(flow parameters, the run's spec); give the training its secrets through the "
                "instance's role, a Prefect Secret block or a secret manager"
            )
    return options


def no_userinfo(field: str, uri: str) -> str:
    """A URI with `user:password@` in it would carry a credential into the store or user data."""
    if "@" in urlsplit(uri).netloc:
        raise ValueError(
            f"{field}: {uri.split('@')[-1]!r} carries a user or password; the instance reads "
            "through its own role (instance profile / service account): leave them out"
        )
    return uri


class MeterSpec(BaseModel):
    """Which meter the VM reads: the plan's estimate; NVML (the instance's visible GPUs); RAPL;
    or `auto`: NVML, then RAPL, then the estimate, the first that works there."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Literal["estimate", "nvml", "rapl", "auto"] = "estimate"
    power_w: float = Field(default=0.0, ge=0, description="the estimate's power, PUE included")
    label: str = "plan estimate"
    pue: float = Field(
        default=1.0,
        ge=1.0,
        description="the provider's PUE, applied to measured GPU energy (not to power_w)",
    )


class RunSpec(BaseModel):
    """Everything the VM needs to train, and nothing secret (it reads the store as its role)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    version: Literal[1] = VERSION
    attempt: str = Field(default_factory=lambda: uuid.uuid4().hex)
    job: str = Field(min_length=1)
    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    provider: Provider
    entrypoint: str = Field(min_length=1)
    options: dict[str, str] = Field(default_factory=dict)
    checkpoint_store: str = Field(min_length=1, description="store URI, as open_store takes")
    checkpoint_prefix: str = ""
    keep: int = Field(default=3, ge=1)
    resume_from: str | None = None
    allow_fresh_start: bool = False
    checkpoint_every_s: float = Field(default=1800.0, gt=0)
    heartbeat_every_s: float = Field(default=30.0, gt=0)
    poll_every_s: float = Field(default=5.0, gt=0, description="notice and stop checks")
    meter: MeterSpec = Field(default_factory=MeterSpec)

    @field_validator("options")
    @classmethod
    def _no_secret_options(cls, options: dict[str, str]) -> dict[str, str]:
        return no_secret_options(options)

    @field_validator("checkpoint_store", "resume_from")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        return None if uri is None else no_userinfo("checkpoint store", uri)


class DeviceReading(BaseModel):
    """One GPU's energy as the VM's NVML meter read it: the board's, before PUE, since the agent
    started (the same reading as the message's `energy_j`, which is their sum x the PUE)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    index: int = Field(ge=0, description="NVML's index of the board on the instance")
    uuid: str = ""
    name: str = ""
    energy_kwh: float = Field(ge=0)
    measured: bool = Field(description="False: an estimate (power limit x utilisation)")
    method: Literal["counter", "power", "utilisation"] = "counter"


class Heartbeat(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    version: Literal[1] = VERSION
    attempt: str
    seq: int = Field(ge=0)
    at_s: float = Field(description="the VM's clock, seconds since the epoch")
    step: int = Field(default=0, ge=0)
    total_steps: int = Field(default=0, ge=0)
    energy_j: float = Field(default=0.0, ge=0, description="since the agent started")
    meter_label: str = ""
    measured: bool = False
    notice: str | None = Field(default=None, description="a spot/preemption notice, once seen")
    first_step: int | None = Field(
        default=None, ge=0, description="the run's first progress report: its resume point + 1"
    )
    # Optional: a heartbeat or status from an agent that sends only totals still parses.
    devices: list[DeviceReading] | None = Field(
        default=None, description="energy by GPU (NVML); None: the instance's total only"
    )


class Status(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    version: Literal[1] = VERSION
    attempt: str
    state: State
    at_s: float
    step: int = Field(default=0, ge=0)
    total_steps: int = Field(default=0, ge=0)
    checkpoint_uri: str | None = None
    reason: str | None = None
    error: str | None = None
    energy_j: float = Field(default=0.0, ge=0)
    meter_label: str = ""
    # Optional: a heartbeat or status from an agent that sends only totals still parses.
    devices: list[DeviceReading] | None = Field(
        default=None, description="energy by GPU (NVML); None: the instance's total only"
    )


def write(store: ObjectStore, key: str, model: BaseModel) -> None:
    store.put(key, model.model_dump_json().encode())


def read(store: ObjectStore, key: str, model: type[M]) -> M | None:
    """The model at `key`, None when there is none; ProtocolError when it is not one."""
    if not store.exists(key):
        return None
    try:
        raw = store.get(key)
    except FileNotFoundError:  # removed between the two calls
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        version = re.search(rb'"version"\s*:\s*(\d+)', raw)
        if version and int(version.group(1)) != VERSION:
            raise ProtocolError(
                f"{store.uri}/{key}: protocol version {int(version.group(1))}, this carbonshift "
                f"speaks {VERSION}: install the same carbonshift on the flow's side and the VM"
            ) from None
        raise ProtocolError(f"{store.uri}/{key}: not a valid {model.__name__}: {e}") from None


def spec_for(
    ctx: TrainingContext,
    *,
    job: str,
    run_id: str,
    provider: Provider,
    entrypoint: str,
    meter: MeterSpec | None = None,
    heartbeat_every_s: float = 30.0,
    poll_every_s: float = 5.0,
) -> RunSpec:
    """The spec of a run whose checkpoints, options and resume point are the context's."""
    return RunSpec(
        job=job,
        run_id=run_id,
        provider=provider,
        entrypoint=entrypoint,
        options=dict(ctx.options),
        checkpoint_store=ctx.checkpoints.store.uri,
        checkpoint_prefix=ctx.checkpoints.prefix,
        keep=ctx.checkpoints.keep,
        resume_from=ctx.resume_from,
        allow_fresh_start=ctx.allow_fresh_start,
        checkpoint_every_s=ctx.checkpoint_every_s,
        heartbeat_every_s=heartbeat_every_s,
        poll_every_s=poll_every_s,
        meter=meter or MeterSpec(),
    )
