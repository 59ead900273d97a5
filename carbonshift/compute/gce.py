"""Google Compute Engine behind the compute port.

One instance per run, found again by its labels (`carbonshift-run-id`), never by memory: the
release hook runs in another process. Provisioning is one unit: whatever fails after the
insert, the instance is deleted before the error leaves. Inserts carry a request id derived
from the run id, so a retried provision cannot launch twice. Operations are waited on with
our own ZoneOperationsClient: `ExtendedOperation.result()` polls through an internal client
built without our client options (endpoint, credentials).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from google.api_core import exceptions as api
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.cloud import compute_v1

from carbonshift.compute.gce_errors import (
    CREDENTIALS_HELP,
    ZoneUnavailable,
    from_api_error,
    from_operation,
)
from carbonshift.compute.gce_machine import (
    BUILT_IN_GPU_FAMILIES,
    LABEL_RUN_ID,
    META_HEARTBEAT,
    META_JOB,
    META_RUN_ID,
    Accelerator,
    MachineConfig,
    default_zones,
    instance_body,
    label_value,
    region_name,
    request_id,
)
from carbonshift.compute.port import (
    AccessDenied,
    CapacityError,
    ComputeError,
    Instance,
    LaunchRequest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Deep Learning VM families rotate; list the current ones with
# `gcloud compute images list --project deeplearning-platform-release --no-standard-images`.
DEFAULT_IMAGE = (
    "projects/deeplearning-platform-release/global/images/family/"
    "common-cu128-ubuntu-2204-nvidia-570"
)
# A spot reclaim or a stop: the run cannot go on on this instance.
STOPPED = frozenset({"STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED", "TERMINATED"})
_DONE = compute_v1.Operation.Status.DONE
INSERT_TRIES = 3
_TRANSIENT = (api.ServerError, OSError)
_INSERT_PASSING = (api.NotFound, api.Conflict, *_TRANSIENT)
_PROJECT = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_MACHINE = re.compile(r"^[a-z][a-z0-9-]*$")


class GceCompute:
    """Instances in one project and region; zones are tried in order when one has no capacity.

    `credentials`: None uses Application Default Credentials; a prefect-gcp `GcpCredentials`
    block gives them with `get_credentials_from_service_account()`. `client_options` with an
    `api_endpoint` points both clients elsewhere (a test fake). `termination_action` for spot:
    DELETE (default) frees the disk and the name at once; a run resumes from its checkpoint in
    object storage, possibly in another region, so a stopped VM would only bill its disk.
    """

    name = "gcp"

    def __init__(
        self,
        project: str,
        region: str,
        *,
        zones: tuple[str, ...] | None = None,
        image: str = DEFAULT_IMAGE,
        disk_gb: int = 200,
        network: str = "global/networks/default",
        subnetwork: str | None = None,
        external_ip: bool = True,
        service_account_email: str | None = None,
        accelerators: Mapping[str, Accelerator] | None = None,
        termination_action: str = "DELETE",
        credentials: Credentials | None = None,
        client_options: dict[str, Any] | None = None,
        poll_interval_s: float = 5.0,
        timeout_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _PROJECT.match(project):
            raise ValueError(f"project {project!r}: expected a GCP project id, e.g. 'my-proj-123'")
        name = region_name(region)
        self.project = project
        self.region = f"gcp:{name}"
        self.zones = tuple(zones) if zones is not None else default_zones(name)
        bad = [z for z in self.zones if not z.startswith(f"{name}-")]
        if bad or not self.zones:
            raise ValueError(f"zones {bad or '()'}: give zones of {name}, e.g. {name}-a")
        if disk_gb < 10:
            raise ValueError(f"disk_gb {disk_gb}: a boot disk needs at least 10 GB")
        if termination_action not in ("DELETE", "STOP"):
            raise ValueError(f"termination_action {termination_action!r}: DELETE or STOP")
        if poll_interval_s < 0 or timeout_s <= 0:
            raise ValueError("poll_interval_s must be >= 0 and timeout_s > 0")
        accelerators = dict(accelerators or {})
        for machine in accelerators:
            if machine.startswith(BUILT_IN_GPU_FAMILIES):
                raise ValueError(
                    f"accelerators[{machine!r}]: {machine} carries its GPUs; "
                    "only N1 machines take accelerators"
                )
        self._config = MachineConfig(
            image,
            disk_gb,
            network,
            subnetwork,
            external_ip,
            service_account_email,
            accelerators,
            termination_action,
        )
        self._credentials = credentials
        self._client_options = client_options
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._sleep = sleep

    # -- the port ------------------------------------------------------------------------------
    def provision(self, request: LaunchRequest) -> Instance:
        self._check(request)
        for zone, vm in self._find_all(request.run_id):
            if vm.status in STOPPED:
                # A stopped leftover cannot carry the run on; a fresh instance replaces it.
                self._delete(zone, vm)
                continue
            try:
                with self._rollback(zone, vm.name):
                    return self._describe(zone, self._wait_running(zone, vm.name))
            except ZoneUnavailable:
                log.info("GCE %s: %s was reclaimed at start; launching anew", zone, vm.name)
        failures = []
        for zone in self.zones:
            try:
                return self._launch(zone, request)
            except ZoneUnavailable as e:
                log.info("GCE %s: %s, trying the next zone", request.instance_type, e)
                failures.append(str(e))
        raise CapacityError(self.region, request.instance_type, "; ".join(failures))

    def release(self, run_id: str) -> bool:
        found = self._find_all(run_id)
        for zone, vm in found:
            self._delete(zone, vm)
        return bool(found)

    def find(self, run_id: str) -> Instance | None:
        found = sorted(self._find_all(run_id), key=lambda zv: zv[1].status in STOPPED)
        return self._describe(*found[0]) if found else None

    def interrupted(self, run_id: str) -> bool:
        return all(vm.status in STOPPED for _, vm in self._find_all(run_id))

    def held(self) -> list[Instance]:
        return [self._describe(z, vm) for z, vm in self._list(f"labels.{LABEL_RUN_ID}:*")]

    # -- provisioning --------------------------------------------------------------------------
    def _check(self, request: LaunchRequest) -> None:
        if region_name(request.region) != self.region.removeprefix("gcp:"):
            raise ValueError(f"request.region {request.region!r}: this GceCompute is {self.region}")
        machine = request.instance_type
        if not _MACHINE.match(machine):
            raise ValueError(
                f"request.instance_type {machine!r}: a GCE machine type, e.g. a2-highgpu-1g"
            )
        if machine.startswith("n1-") and machine not in self._config.accelerators:
            raise ValueError(
                f"request.instance_type {machine!r} has no GPU: give it one with "
                f"GceCompute(accelerators={{{machine!r}: Accelerator('nvidia-tesla-t4', 1)}})"
            )

    def _launch(self, zone: str, request: LaunchRequest) -> Instance:
        body = instance_body(self._config, zone, request)
        rid = request_id(request.run_id, zone, "insert")
        for _ in range(2):
            with self._rollback(zone, body.name):
                operation = self._insert(zone, body, rid, request.instance_type)
                if operation is not None:
                    done = self._wait(zone, operation, "compute.instances.create")
                    problem = from_operation(
                        done,
                        permission="compute.instances.create",
                        region=self.region,
                        machine=request.instance_type,
                        zone=zone,
                    )
                    if problem is not None:
                        raise problem
                vm = self._get(zone, body.name)
                if vm is not None and _meta(vm, META_RUN_ID) != request.run_id:
                    raise _Foreign(f"{zone}: instance {body.name} belongs to another run")
                if vm is not None:
                    return self._describe(zone, self._wait_running(zone, body.name))
                if operation is None:
                    raise ComputeError(f"{zone}: {body.name} existed, then vanished; retry")
                # GCE replayed the insert of an instance released since: ask anew, under an
                # id derived from the replayed operation, so a retry of this stays idempotent.
                rid = request_id(request.run_id, zone, "insert", operation)
        raise ComputeError(f"{zone}: inserted {body.name} twice, and it is not there")

    def _insert(self, zone: str, body: compute_v1.Instance, rid: str, machine: str) -> str | None:
        """The insert operation's name; None when the instance already exists (409).

        A reply lost to a 5xx or a broken connection is asked again under the same request
        id: GCE answers a repeat with the first call's operation, so it launches once."""
        request = compute_v1.InsertInstanceRequest(
            project=self.project, zone=zone, instance_resource=body, request_id=rid
        )
        permission = "compute.instances.create"
        for attempt in range(1, INSERT_TRIES + 1):
            try:
                with self._errors(permission, zone, machine, passing=_INSERT_PASSING):
                    return str(self._instances.insert(request=request).name)
            except api.Conflict:
                return None
            except api.NotFound as e:
                raise from_api_error(
                    e, permission=permission, region=self.region, machine=machine, zone=zone
                ) from e
            except _TRANSIENT as e:
                if attempt == INSERT_TRIES:
                    raise ComputeError(f"{zone}: insert failed {attempt} times: {e}") from e
                log.info("GCE %s: insert failed (%s), asking again", zone, type(e).__name__)
                self._sleep(self.poll_interval_s)
        raise AssertionError("unreachable")

    def _wait(self, zone: str, operation: str, permission: str) -> compute_v1.Operation:
        deadline = self._clock() + self.timeout_s
        while True:
            with self._errors("compute.zoneOperations.get", zone):
                done = self._operations.wait(project=self.project, zone=zone, operation=operation)
            if done.status == _DONE:
                return done
            if self._clock() >= deadline:
                raise ComputeError(
                    f"{zone}: {permission} operation {operation} not done after "
                    f"{self.timeout_s:g} s"
                )
            self._sleep(self.poll_interval_s)

    def _wait_running(self, zone: str, name: str) -> compute_v1.Instance:
        deadline = self._clock() + self.timeout_s
        while True:
            vm = self._get(zone, name)
            if vm is None or vm.status in STOPPED:
                # Reclaimed before it ever ran (spot): this zone has no capacity after all.
                raise ZoneUnavailable(f"{zone}: {name} {vm.status if vm else 'gone'} at start")
            if vm.status == "RUNNING":
                return vm
            if self._clock() >= deadline:
                raise ComputeError(f"{zone}: {name} still {vm.status} after {self.timeout_s:g} s")
            self._sleep(self.poll_interval_s)

    @contextmanager
    def _rollback(self, zone: str, name: str) -> Iterator[None]:
        """Delete `name` if what the block does fails: no instance outlives a failed launch."""
        try:
            yield
        except _Foreign:
            raise
        except BaseException as failure:
            try:
                vm = self._get(zone, name)
                if vm is not None:
                    self._delete(zone, vm)
            except Exception as e:
                failure.add_note(
                    f"rollback: could not delete {name} in {zone}: {e}; it carries the "
                    f"{LABEL_RUN_ID} label, so held() lists it for the reaper"
                )
            raise

    def _delete(self, zone: str, vm: compute_v1.Instance) -> None:
        # The instance's numeric id makes the request id differ for each instance of a name.
        rid = request_id(vm.name, zone, "delete", str(vm.id))
        request = compute_v1.DeleteInstanceRequest(
            project=self.project, zone=zone, instance=vm.name, request_id=rid
        )
        try:
            with self._errors("compute.instances.delete", zone):
                operation = str(self._instances.delete(request=request).name)
        except api.NotFound:
            return
        done = self._wait(zone, operation, "compute.instances.delete")
        problem = from_operation(
            done, permission="compute.instances.delete", region=self.region, machine="", zone=zone
        )
        if problem is not None:
            raise ComputeError(f"{zone}: could not delete {vm.name}: {problem}") from problem

    # -- reading -------------------------------------------------------------------------------
    def _get(self, zone: str, name: str) -> compute_v1.Instance | None:
        try:
            with self._errors("compute.instances.get", zone):
                return self._instances.get(project=self.project, zone=zone, instance=name)
        except api.NotFound:
            return None

    def _list(self, filter_: str) -> list[tuple[str, compute_v1.Instance]]:
        found: list[tuple[str, compute_v1.Instance]] = []
        missing = 0
        for zone in self.zones:
            request = compute_v1.ListInstancesRequest(
                project=self.project, zone=zone, filter=filter_
            )
            try:
                with self._errors("compute.instances.list", zone):
                    found.extend((zone, vm) for vm in self._instances.list(request=request))
            except api.NotFound:  # a zone this region does not have
                missing += 1
        if missing == len(self.zones):
            raise ComputeError(f"project {self.project} has none of the zones {self.zones}")
        return found

    def _find_all(self, run_id: str) -> list[tuple[str, compute_v1.Instance]]:
        # The label is a lossy image of the run id; the metadata holds it exactly.
        query = f'labels.{LABEL_RUN_ID} = "{label_value(run_id)}"'
        return [(z, vm) for z, vm in self._list(query) if _meta(vm, META_RUN_ID) == run_id]

    def _describe(self, zone: str, vm: compute_v1.Instance) -> Instance:
        return Instance(
            run_id=_meta(vm, META_RUN_ID) or vm.labels.get(LABEL_RUN_ID, ""),
            provider="gcp",
            region=self.region,
            instance_type=vm.machine_type.rsplit("/", 1)[-1],
            handle=f"projects/{self.project}/zones/{zone}/instances/{vm.name}",
            job=_meta(vm, META_JOB),
            spot=vm.scheduling.provisioning_model == "SPOT",
            launched_at_s=_seconds(vm.creation_timestamp),
            heartbeat_uri=_meta(vm, META_HEARTBEAT) or None,
        )

    # -- clients and errors --------------------------------------------------------------------
    @contextmanager
    def _errors(
        self,
        permission: str,
        zone: str,
        machine: str = "",
        passing: tuple[type[Exception], ...] = (api.NotFound, api.Conflict),
    ) -> Iterator[None]:
        """API errors as the port's; `passing` ones go to the caller, who knows what they mean."""
        try:
            yield
        except passing:
            raise
        except api.GoogleAPICallError as e:
            raise from_api_error(
                e, permission=permission, region=self.region, machine=machine, zone=zone
            ) from e
        except (auth_errors.DefaultCredentialsError, auth_errors.RefreshError) as e:
            raise AccessDenied("credentials", f"{CREDENTIALS_HELP} ({type(e).__name__})") from e
        except OSError as e:  # requests' connection errors: the endpoint is unreachable
            raise ComputeError(f"{zone}: {permission} failed: {type(e).__name__}: {e}") from e

    @cached_property
    def _instances(self) -> compute_v1.InstancesClient:
        return self._client(compute_v1.InstancesClient)

    @cached_property
    def _operations(self) -> compute_v1.ZoneOperationsClient:
        # Ours, with the same options: the SDK's own operation client ignores client_options.
        return self._client(compute_v1.ZoneOperationsClient)

    def _client(self, kind: Callable[..., T]) -> T:
        try:
            return kind(credentials=self._credentials, client_options=self._client_options)
        except auth_errors.DefaultCredentialsError as e:
            raise AccessDenied("credentials", CREDENTIALS_HELP) from e


class _Foreign(ComputeError):
    """The instance under our name is another run's: never roll it back."""


def _meta(vm: compute_v1.Instance, key: str) -> str:
    return next((str(i.value) for i in vm.metadata.items if i.key == key), "")


def _seconds(timestamp: str) -> float | None:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None
