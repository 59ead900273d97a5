"""Which compute a run provisions on, from its configuration: this machine (the default), or the
cloud of each region (EC2 for `aws:` regions, GCE for `gcp:`), on which the run is remote (the
VM runs the agent; the flow follows it through the checkpoint store).

Credentials are not in here: the SDKs' default chains find them, or the flow's tasks resolve
the named Prefect blocks (`credentials_block`) into a boto3 session / google credentials and
pass them to `compute_for`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carbonshift.compute import Compute, LocalCompute
from carbonshift.remote.bootstrap import BootstrapConfig
from carbonshift.remote.emulate import EmulatedInstances, emulated_instances


class AwsSettings(BaseModel):
    """EC2 launches. Unset values take the adapter's defaults (the region's Deep Learning AMI
    through its public SSM parameter, the default VPC)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    ami: str | None = Field(default=None, pattern=r"^ami-[0-9a-f]+$")
    ami_parameter: str | None = Field(default=None, description="SSM parameter naming the AMI")
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)
    instance_profile: str | None = Field(
        default=None, description="the instance's role: it reads and writes the store as that"
    )
    key_name: str | None = None
    root_volume_gb: int | None = Field(default=None, ge=8)
    wait_delay_s: float = Field(default=5.0, ge=0, description="between looks while waiting")
    credentials_block: str | None = Field(
        default=None, description="name of a Prefect AwsCredentials block (default: boto3's chain)"
    )


class GcpSettings(BaseModel):
    """GCE launches. `project` is required for a `gcp:` region."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    project: str | None = None
    zones: list[str] | None = Field(default=None, description="default: the region's a/b/c")
    image: str | None = None
    disk_gb: int = Field(default=200, ge=10)
    network: str = "global/networks/default"
    subnetwork: str | None = None
    external_ip: bool = True
    service_account_email: str | None = Field(
        default=None, description="the instance's identity: it reads and writes the store as that"
    )
    termination_action: Literal["DELETE", "STOP"] = "DELETE"
    poll_interval_s: float = Field(default=5.0, gt=0, description="between operation polls")
    api_endpoint: str | None = Field(default=None, description="another Compute API endpoint")
    anonymous: bool = Field(
        default=False, description="no credentials at all: for an emulator at api_endpoint"
    )
    credentials_block: str | None = Field(
        default=None, description="name of a Prefect GcpCredentials block (default: ADC)"
    )


class RemoteTimings(BaseModel):
    """How a remote run keeps in touch through the store."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    heartbeat_every_s: float = Field(default=30.0, gt=0)
    poll_every_s: float = Field(default=5.0, gt=0, description="the VM's notice and stop checks")
    heartbeat_timeout_s: float = Field(
        default=180.0, gt=0, description="no new heartbeat this long: the VM is lost"
    )
    start_grace_s: float = Field(
        default=900.0, gt=0, description="boot and install: the first heartbeat may take this"
    )
    stop_wait_s: float = Field(
        default=110.0, gt=0, description="after a stop, the VM's final status is waited this long"
    )
    stop_grace_s: float = Field(
        default=120.0, gt=0, description="then the instance is released, checkpoint or not"
    )
    flow_poll_s: float = Field(default=5.0, gt=0, description="the flow reads the heartbeat")

    @model_validator(mode="after")
    def _heartbeats_within_the_timeout(self) -> RemoteTimings:
        if self.heartbeat_timeout_s < 2 * self.heartbeat_every_s:
            raise ValueError(
                f"remote.heartbeat_timeout_s ({self.heartbeat_timeout_s:g}) must be at least "
                f"twice remote.heartbeat_every_s ({self.heartbeat_every_s:g}): one late "
                "heartbeat must not count as a lost instance"
            )
        return self

    @model_validator(mode="after")
    def _stop_before_release(self) -> RemoteTimings:
        if self.stop_wait_s >= self.stop_grace_s:
            raise ValueError(
                f"remote.stop_wait_s ({self.stop_wait_s:g}) must be less than "
                f"remote.stop_grace_s ({self.stop_grace_s:g}): the status is read before "
                "the instance is released"
            )
        return self


# A PUE is facility energy over IT energy: never below 1. Above 3 is no data centre's figure
# (surveys put the average near 1.6, old server rooms near 2.5): a typo, or a percentage.
MAX_LOCAL_PUE = 3.0


class ComputeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Literal["local", "cloud"] = Field(
        default="local",
        description="local: this machine; cloud: EC2 for aws: regions, GCE for gcp: regions",
    )
    state_dir: str = Field(
        default=".carbonshift/compute", description="local compute's (and emulation's) state"
    )
    aws: AwsSettings = Field(default_factory=AwsSettings)
    gcp: GcpSettings = Field(default_factory=GcpSettings)
    bootstrap: BootstrapConfig = Field(
        default_factory=BootstrapConfig, description="what a cloud instance installs and runs"
    )
    remote: RemoteTimings = Field(default_factory=RemoteTimings)
    local_pue: float = Field(
        default=1.0,
        description="this machine's PUE (1.0: no facility overhead known): a local run's GPU "
        "energy and its estimate are scaled by it, once, and the run's records state it",
    )

    @field_validator("local_pue")
    @classmethod
    def _a_facilitys_pue(cls, pue: float) -> float:
        if not (math.isfinite(pue) and 1.0 <= pue <= MAX_LOCAL_PUE):
            raise ValueError(
                f"compute.local_pue: {pue!r} is no facility's PUE: give a PUE from 1.0 (no "
                f"overhead) to {MAX_LOCAL_PUE:g}, e.g. 1.2 for an efficient machine room"
            )
        return pue

    @property
    def remote_runs(self) -> bool:
        """Whether the training runs on the instance (through the agent), not in this process."""
        return self.kind == "cloud"

    def compute_for(
        self, region: str, *, aws_session: Any = None, gcp_credentials: Any = None
    ) -> Compute:
        """The compute that launches in `region` (`aws:us-east-1`, `gcp:europe-west4`).

        With the emulation switch on (CARBONSHIFT_EMULATE_INSTANCES=1), a cloud instance is
        stood in for by a local process running its boot script (carbonshift.remote.emulate)."""
        if self.kind == "local":
            return LocalCompute(Path(self.state_dir))
        provider = region.partition(":")[0]
        compute: Compute
        if provider == "aws":
            compute = self._ec2(region, aws_session)
        elif provider == "gcp":
            compute = self._gce(region, gcp_credentials)
        else:
            raise ValueError(
                f"region {region!r}: compute.kind 'cloud' launches in aws: or gcp: regions; "
                "use compute.kind 'local' for others"
            )
        if emulated_instances():
            compute = EmulatedInstances(compute, Path(self.state_dir) / "emulated")
        return compute

    def check(self, region: str) -> None:
        """What `compute_for(region)` would refuse, without making a client (for the CLI to
        fail before Prefect starts)."""
        if self.kind == "local":
            return
        emulated_instances()  # an odd value of the switch is an error, naming it
        provider = region.partition(":")[0]
        if provider not in ("aws", "gcp"):
            raise ValueError(
                f"region {region!r}: compute.kind 'cloud' launches in aws: or gcp: regions; "
                "use compute.kind 'local' for others"
            )
        if provider == "gcp" and self.gcp.project is None:
            raise ValueError(
                f"compute.gcp.project: required to launch in {region}; give the GCP project id"
            )

    def _ec2(self, region: str, session: Any) -> Compute:
        from carbonshift.compute.ec2 import Ec2Compute  # boto3: imported when used

        a = self.aws
        extra: dict[str, Any] = {}
        if a.ami_parameter is not None:
            extra["ami_parameter"] = a.ami_parameter
        return Ec2Compute(
            region,
            ami=a.ami,
            subnet_id=a.subnet_id,
            security_group_ids=a.security_group_ids,
            instance_profile=a.instance_profile,
            key_name=a.key_name,
            root_volume_gb=a.root_volume_gb,
            wait_delay_s=a.wait_delay_s,
            session=session,
            **extra,
        )

    def _gce(self, region: str, credentials: Any) -> Compute:
        from carbonshift.compute.gce import GceCompute  # google-cloud-compute: when used

        g = self.gcp
        if g.project is None:
            raise ValueError(
                f"compute.gcp.project: required to launch in {region}; give the GCP project id"
            )
        extra: dict[str, Any] = {}
        if g.image is not None:
            extra["image"] = g.image
        if g.api_endpoint is not None:
            extra["client_options"] = {"api_endpoint": g.api_endpoint}
        return GceCompute(
            g.project,
            region,
            zones=tuple(g.zones) if g.zones is not None else None,
            disk_gb=g.disk_gb,
            network=g.network,
            subnetwork=g.subnetwork,
            external_ip=g.external_ip,
            service_account_email=g.service_account_email,
            termination_action=g.termination_action,
            poll_interval_s=g.poll_interval_s,
            credentials=credentials if credentials is not None else _anonymous(g),
            **extra,
        )


def _anonymous(settings: GcpSettings) -> Any:
    if not settings.anonymous:
        return None  # Application Default Credentials
    if settings.api_endpoint is None:
        raise ValueError("compute.gcp.anonymous: only with compute.gcp.api_endpoint (an emulator)")
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]
