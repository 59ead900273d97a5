"""EC2 behind the compute port: one instance per run, found again by its tags.

An instance carries `carbonshift:job` and `carbonshift:run-id` (its volumes too), so any process
finds, releases or reaps it by run id. One adapter serves one region: the AMI, subnet and
security groups of a launch are regional.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from carbonshift.clouds import aws, iam
from carbonshift.clouds.aws_errors import CAPACITY_REASONS, as_port_errors
from carbonshift.compute.port import (
    TAG_HEARTBEAT,
    TAG_JOB,
    TAG_RUN_ID,
    AccessDenied,
    CapacityError,
    ComputeError,
    Instance,
    LaunchRequest,
)

log = logging.getLogger("carbonshift.compute")

DLAMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)
LIVE = ("pending", "running")
HELD = (*LIVE, "stopping", "stopped")
NOT_GONE = (*HELD, "shutting-down")
USER_DATA_MAX_BYTES = 16 * 1024
TAG_VALUE_MAX_CHARS = 256
_TOKEN_TRIES = 3


@dataclass(frozen=True)
class _Image:
    image_id: str
    root_device: str
    root_gb: int  # the AMI's root volume size, the smallest the instance may get


def client_token(request: LaunchRequest, attempt: int) -> str:
    """RunInstances' idempotency token: the same for a retried launch, so AWS never makes two
    instances, and new for a new launch of the run (`attempt` counts its earlier instances),
    since AWS answers a known token with the old, maybe terminated, instance."""
    parts = (
        request.run_id,
        aws.region_key(request.region),
        request.instance_type,
        "spot" if request.spot else "on-demand",
        str(attempt),
    )
    return "carbonshift-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:48]


class Ec2Compute:
    """Instances in one AWS region. `session` is a boto3.Session (None: the default chain);
    `ami` wins over `ami_parameter`, a public SSM parameter resolved in this region."""

    name = "ec2"

    def __init__(
        self,
        region: str,
        *,
        ami: str | None = None,
        ami_parameter: str = DLAMI_PARAMETER,
        subnet_id: str | None = None,
        security_group_ids: Sequence[str] = (),
        instance_profile: str | None = None,
        key_name: str | None = None,
        root_volume_gb: int | None = None,
        session: Any = None,
        wait_delay_s: float = 5.0,
        wait_max_attempts: int = 120,
    ) -> None:
        self.region = aws.region_key(region)
        if root_volume_gb is not None and root_volume_gb < 8:
            raise ValueError(f"root_volume_gb must be >= 8 (GiB), got {root_volume_gb}")
        if wait_delay_s < 0 or wait_max_attempts < 1:
            raise ValueError("wait_delay_s must be >= 0 and wait_max_attempts >= 1")
        self.ami = ami
        self.ami_parameter = ami_parameter
        self.subnet_id = subnet_id
        self.security_group_ids = tuple(security_group_ids)
        self.instance_profile = instance_profile
        self.key_name = key_name
        self.root_volume_gb = root_volume_gb
        self.wait_delay_s = wait_delay_s
        self.wait_max_attempts = wait_max_attempts
        self._session = session
        self._clients: dict[str, Any] = {}
        self._image: _Image | None = None

    # -- the port ---------------------------------------------------------------------------

    def provision(self, request: LaunchRequest) -> Instance:
        self._check(request)
        known = self._describe(request.run_id, LIVE)
        if known:  # a retry: the launch happened, maybe in another process
            described = known[-1]
            if described["InstanceType"] != request.instance_type:
                log.warning(
                    "run %s already holds %s (%s); keeping it instead of launching %s",
                    request.run_id,
                    described["InstanceId"],
                    described["InstanceType"],
                    request.instance_type,
                )
        else:
            described = self._launch(request)
        instance_id = described["InstanceId"]
        try:  # one unit: an instance that does not reach running is terminated
            self._wait("instance_running", [instance_id], request.instance_type)
            return self._instance(self._describe_ids([instance_id])[0])
        except BaseException as e:
            self._terminate_after_failure(instance_id, e)
            raise

    def release(self, run_id: str) -> bool:
        found = self._describe(run_id, NOT_GONE)
        if not found:
            return False
        ids = [d["InstanceId"] for d in found]
        with self._errors("ec2", "TerminateInstances"):
            self._client("ec2").terminate_instances(InstanceIds=ids)
        self._wait("instance_terminated", ids)
        log.info("released %s of run %s in %s", ", ".join(ids), run_id, self.region)
        return True

    def find(self, run_id: str) -> Instance | None:
        found = self._describe(run_id, LIVE)
        return self._instance(found[-1]) if found else None

    def interrupted(self, run_id: str) -> bool:
        live = self._describe(run_id, LIVE)
        if not live:  # stopping, stopped, shutting down, terminated or gone
            return True
        request_id = live[-1].get("SpotInstanceRequestId")
        if not request_id:
            return False
        with self._errors("ec2", "DescribeSpotInstanceRequests"):
            found = self._client("ec2").describe_spot_instance_requests(
                SpotInstanceRequestIds=[request_id]
            )["SpotInstanceRequests"]
        # AWS marks the request two minutes before it reclaims the instance.
        codes = [r.get("Status", {}).get("Code", "") for r in found]
        return any(
            c.startswith(("marked-for-", "instance-terminated-", "instance-stopped-"))
            for c in codes
        )

    def held(self) -> list[Instance]:
        filters = [
            {"Name": "tag-key", "Values": [TAG_RUN_ID]},
            {"Name": "instance-state-name", "Values": list(HELD)},
        ]
        return [self._instance(d) for d in self._describe_filtered(filters)]

    # -- launching --------------------------------------------------------------------------

    def _check(self, request: LaunchRequest) -> None:
        if aws.region_key(request.region) != self.region:
            raise ComputeError(
                f"run {request.run_id}: a launch in {request.region} reached the EC2 adapter of "
                f"{self.region}: use one Ec2Compute per region"
            )
        if not request.run_id or len(request.run_id) > 256 or len(request.job) > 256:
            raise ComputeError("run_id must be 1-256 characters and job at most 256 (EC2 tags)")
        script = request.boot_script or ""
        if len(script.encode()) > USER_DATA_MAX_BYTES:
            raise ComputeError(
                f"boot_script is {len(script.encode())} bytes; EC2 user data holds at most "
                f"{USER_DATA_MAX_BYTES}: fetch the rest from the checkpoint store at boot"
            )
        if script and aws.secret_in(script, self._session):
            raise ComputeError(
                "boot_script holds the AWS secret key or session token carbonshift signs with: "
                "user data is readable on the instance; give the instance a role "
                "(instance_profile) instead"
            )

    def _launch(self, request: LaunchRequest) -> dict[str, Any]:
        image = self._resolve_image()
        seen = len(self._describe(request.run_id, None))
        for attempt in range(seen, seen + _TOKEN_TRIES):
            described = self._run(request, image, client_token(request, attempt))
            if described["State"]["Name"] not in ("shutting-down", "terminated"):
                log.info(
                    "launched %s (%s%s) for run %s in %s",
                    described["InstanceId"],
                    request.instance_type,
                    ", spot" if request.spot else "",
                    request.run_id,
                    self.region,
                )
                return described
            # AWS still knew this token from a launch of the run that has ended: count on.
        raise ComputeError(
            f"run {request.run_id}: RunInstances answered {_TOKEN_TRIES} times with an ended "
            "instance of this run; release it and retry later"
        )

    def _run(self, request: LaunchRequest, image: _Image, token: str) -> dict[str, Any]:
        tags = [
            {"Key": TAG_JOB, "Value": request.job},
            {"Key": TAG_RUN_ID, "Value": request.run_id},
            {"Key": "Name", "Value": f"carbonshift {request.job}"[:TAG_VALUE_MAX_CHARS]},
        ]
        # The instance alone: the reaper asks instances, never volumes.
        instance_tags = [*tags, *self._heartbeat_tag(request)]
        # Some AMIs keep their root volume after termination: this one goes with the instance.
        ebs = {"DeleteOnTermination": True, "VolumeSize": self.root_volume_gb or image.root_gb}
        params: dict[str, Any] = {
            "ImageId": image.image_id,
            "InstanceType": request.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": token,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": instance_tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
            "BlockDeviceMappings": [{"DeviceName": image.root_device, "Ebs": ebs}],
            # A boot script that powers off ends the bill too.
            "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        }
        if request.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if request.boot_script:
            params["UserData"] = request.boot_script
        if self.subnet_id:
            params["SubnetId"] = self.subnet_id
        if self.security_group_ids:
            params["SecurityGroupIds"] = list(self.security_group_ids)
        if self.instance_profile:
            key = "Arn" if self.instance_profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: self.instance_profile}
        if self.key_name:
            params["KeyName"] = self.key_name
        with self._errors("ec2", "RunInstances", request.instance_type):
            found: list[dict[str, Any]] = self._client("ec2").run_instances(**params)["Instances"]
        return found[0]

    def _heartbeat_tag(self, request: LaunchRequest) -> list[dict[str, str]]:
        """The heartbeat URI in tags: a tag value holds 256 characters, a store URI with a long
        prefix and job name needs more, so it continues in `carbonshift:heartbeat:2` ... :4."""
        uri = request.heartbeat_uri
        if not uri:
            return []
        chunks = [uri[i : i + TAG_VALUE_MAX_CHARS] for i in range(0, len(uri), TAG_VALUE_MAX_CHARS)]
        if len(chunks) > HEARTBEAT_TAGS:
            # A URI cut short would name another object; without the tag the reaper judges
            # this instance by its run's state alone.
            log.warning(
                "run %s: heartbeat URI is %d characters, more than %d EC2 tags hold (%d); "
                "launching without the %s tags (use a shorter checkpoint_store or job name)",
                request.run_id,
                len(uri),
                HEARTBEAT_TAGS,
                HEARTBEAT_TAGS * TAG_VALUE_MAX_CHARS,
                TAG_HEARTBEAT,
            )
            return []
        return [{"Key": _heartbeat_key(n), "Value": c} for n, c in enumerate(chunks, start=1)]

    def _resolve_image(self) -> _Image:
        if self._image is not None:
            return self._image
        image_id = self.ami or self._ami_from_parameter()
        with self._errors("ec2", "DescribeImages"):
            try:
                images = self._client("ec2").describe_images(ImageIds=[image_id])["Images"]
            except aws.ClientError as e:
                if not aws.error_code(e).startswith("InvalidAMIID"):
                    raise
                images = []
        if not images:
            where = f"`ami` {image_id}" if self.ami else f"{self.ami_parameter} -> {image_id}"
            raise ComputeError(
                f"{self.region}: no AMI {where} in this region: AMI ids are regional; set "
                "`ami` to an id of this region or leave it unset to resolve `ami_parameter`"
            )
        root_device = images[0].get("RootDeviceName") or "/dev/sda1"
        root_gb = next(
            (
                int(m["Ebs"].get("VolumeSize", 0))
                for m in images[0].get("BlockDeviceMappings", [])
                if m.get("DeviceName") == root_device and "Ebs" in m
            ),
            0,
        )
        if self.root_volume_gb is not None and self.root_volume_gb < root_gb:
            raise ComputeError(
                f"root_volume_gb is {self.root_volume_gb} but the AMI {image_id} needs at least "
                f"{root_gb} GiB: raise it or leave it unset"
            )
        self._image = _Image(image_id, root_device, max(root_gb, 8))
        return self._image

    def _ami_from_parameter(self) -> str:
        with self._errors("ssm", "GetParameter"):
            try:
                found = self._client("ssm").get_parameter(Name=self.ami_parameter)
            except aws.ClientError as e:
                if aws.error_code(e) != "ParameterNotFound":
                    raise
                raise ComputeError(
                    f"{self.region}: cannot resolve the AMI: the SSM parameter "
                    f"{self.ami_parameter!r} does not exist in this region; set `ami` to an "
                    "AMI id of this region, or `ami_parameter` to a parameter that exists"
                ) from e
        return str(found["Parameter"]["Value"])

    # -- describing, waiting, errors ---------------------------------------------------------

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws.client(service, self.region, self._session)
        return self._clients[service]

    def _describe(self, run_id: str, states: Sequence[str] | None) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]}]
        if states is not None:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        return self._describe_filtered(filters)

    def _describe_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        with self._errors("ec2", "DescribeInstances"):
            pages = self._client("ec2").describe_instances(InstanceIds=ids)
        return [i for r in pages["Reservations"] for i in r["Instances"]]

    def _describe_filtered(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Matching instances, oldest launch first."""
        with self._errors("ec2", "DescribeInstances"):
            pages = (
                self._client("ec2").get_paginator("describe_instances").paginate(Filters=filters)
            )
            found = [i for p in pages for r in p["Reservations"] for i in r["Instances"]]
        return sorted(found, key=lambda i: (i["LaunchTime"], i["InstanceId"]))

    def _instance(self, described: dict[str, Any]) -> Instance:
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        return Instance(
            run_id=tags.get(TAG_RUN_ID, ""),
            provider="aws",
            region=self.region,
            instance_type=described["InstanceType"],
            handle=described["InstanceId"],
            job=tags.get(TAG_JOB, ""),
            spot=described.get("InstanceLifecycle") == "spot",
            launched_at_s=described["LaunchTime"].timestamp(),
            heartbeat_uri=_heartbeat_uri(tags),
        )

    def _wait(self, waiter: str, ids: list[str], instance_type: str = "") -> None:
        config = {"Delay": self.wait_delay_s, "MaxAttempts": self.wait_max_attempts}
        with self._errors("ec2", "DescribeInstances", instance_type):
            try:
                self._client("ec2").get_waiter(waiter).wait(InstanceIds=ids, WaiterConfig=config)
            except aws.WaiterError as e:
                code = str((e.last_response or {}).get("Error", {}).get("Code", ""))
                if code in aws.ACCESS_CODES:
                    raise AccessDenied(
                        iam.action("ec2", "DescribeInstances"), f"{self.region}: {code}"
                    ) from e
                raise self._not_reached(waiter, ids, instance_type) from e

    def _not_reached(self, waiter: str, ids: list[str], instance_type: str) -> ComputeError:
        states = []
        for d in self._describe_ids(ids):
            reason = d.get("StateReason", {})
            if reason.get("Code") in CAPACITY_REASONS:
                return CapacityError(self.region, instance_type, reason.get("Message", ""))
            states.append(f"{d['InstanceId']} {d['State']['Name']} ({reason.get('Message', '')})")
        waited_s = self.wait_delay_s * self.wait_max_attempts
        return ComputeError(
            f"{self.region}: {waiter} not reached within {waited_s:g} s: {'; '.join(states)}"
        )

    def _terminate_after_failure(self, instance_id: str, error: BaseException) -> None:
        try:
            with self._errors("ec2", "TerminateInstances"):
                self._client("ec2").terminate_instances(InstanceIds=[instance_id])
            self._wait("instance_terminated", [instance_id])
            log.warning("terminated %s: its launch failed (%s)", instance_id, error)
        except Exception as cleanup:  # noqa: BLE001 - the launch's error is the one to raise
            log.error("could not terminate %s after a failed launch: %s", instance_id, cleanup)
            error.add_note(
                f"{instance_id} in {self.region} may still run ({cleanup}): terminate it "
                "(it carries the carbonshift:run-id tag)"
            )

    def _errors(
        self, service: str, operation: str, instance_type: str = ""
    ) -> AbstractContextManager[None]:
        hint = ""
        if operation == "RunInstances":
            hint = "; a launch also needs ec2:CreateTags for its tags"
            if self.instance_profile:
                hint += " and iam:PassRole for the instance profile's role"
        return as_port_errors(self.region, service, operation, instance_type, hint)


HEARTBEAT_TAGS = 4  # 1,024 characters of heartbeat URI at most


def _heartbeat_key(n: int) -> str:
    return TAG_HEARTBEAT if n == 1 else f"{TAG_HEARTBEAT}:{n}"


def _heartbeat_uri(tags: dict[str, str]) -> str | None:
    parts = []
    for n in range(1, HEARTBEAT_TAGS + 1):
        part = tags.get(_heartbeat_key(n))
        if not part:
            break
        parts.append(part)
    return "".join(parts) or None
