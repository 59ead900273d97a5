"""What a GCE instance for a run looks like: its zones, name, labels, request ids and body.

Pure functions over `compute_v1` types, no API calls: gce.py sends what these build.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from google.cloud import compute_v1

from carbonshift.compute.port import TAG_HEARTBEAT, TAG_JOB, TAG_RUN_ID, LaunchRequest

# GCE label keys allow [a-z0-9_-] only, so the port's `carbonshift:job` becomes `carbonshift-job`.
LABEL_JOB = TAG_JOB.replace(":", "-")
LABEL_RUN_ID = TAG_RUN_ID.replace(":", "-")
# Labels are lossy (63 characters, a small alphabet): the exact values live in metadata too.
META_JOB = LABEL_JOB
META_RUN_ID = LABEL_RUN_ID
# A URI fits no label (63 characters of [a-z0-9_-]): metadata only.
META_HEARTBEAT = TAG_HEARTBEAT.replace(":", "-")

# Zones of the catalog's GCP regions (Compute Engine "Regions and zones", 2025). Not every
# region has an `-a` zone; a region not listed here tries -a, -b, -c, and zones that do not
# exist answer 404, which the adapter skips.
REGION_ZONES: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "europe-west1": ("b", "c", "d"),
}
DEFAULT_ZONE_SUFFIXES = ("a", "b", "c")

# These families carry their GPUs in the machine type; asking for guestAccelerators on them
# is an error at GCE. N1 machines take GPUs as guestAccelerators.
BUILT_IN_GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-", "g4-")
_ACCELERATOR_COUNTS = (1, 2, 4, 8)

_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_ACCELERATOR = re.compile(r"^[a-z0-9-]+$")
_LABEL_PLAIN = re.compile(r"[a-z0-9-]")
_REQUEST_NS = uuid.UUID("6d1c2a52-5b1e-4c1e-9a7e-0c8b5e3f2a10")


@dataclass(frozen=True)
class Accelerator:
    """GPUs attached to an N1 machine: `type` as GCE names it (`nvidia-tesla-t4`)."""

    type: str
    count: int

    def __post_init__(self) -> None:
        if not _ACCELERATOR.match(self.type):
            raise ValueError(
                f"accelerator type {self.type!r}: use GCE's name, e.g. 'nvidia-tesla-t4'"
            )
        if self.count not in _ACCELERATOR_COUNTS:
            raise ValueError(
                f"accelerator count {self.count} for {self.type}: GCE attaches 1, 2, 4 or 8"
            )


def region_name(region: str) -> str:
    """`gcp:europe-west4` or `europe-west4` -> `europe-west4`; anything else is an error."""
    provider, _, name = region.rpartition(":")
    if provider not in ("", "gcp") or not _REGION.match(name):
        raise ValueError(
            f"region {region!r}: expected a GCP region such as 'gcp:europe-west4' or 'europe-west4'"
        )
    return name


def default_zones(region: str) -> tuple[str, ...]:
    name = region_name(region)
    return tuple(f"{name}-{s}" for s in REGION_ZONES.get(name, DEFAULT_ZONE_SUFFIXES))


def label_value(text: str) -> str:
    """An injective mapping of any text into GCE's label alphabet ([a-z0-9_-], <= 63).

    [a-z0-9-] stay; every other character becomes `_` and the hex of its UTF-8 bytes (so `_`
    itself is escaped, and decoding is unambiguous). Longer results keep a prefix and add
    `__` (which no escape produces) and 24 hex digits of SHA-256: distinct beyond that only
    up to a hash collision, which is why the exact value is in metadata too.
    """
    escaped = "".join(
        c if _LABEL_PLAIN.match(c) else "".join(f"_{b:02x}" for b in c.encode()) for c in text
    )
    if len(escaped) <= 63:
        return escaped
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{escaped[:37]}__{digest}"


def instance_name(run_id: str) -> str:
    """A valid RFC 1035 name (`[a-z]([-a-z0-9]*[a-z0-9])?`, <= 63) from the run id: a readable
    slug plus 12 hex digits of its SHA-256, so run ids that slug alike still differ."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:38].strip("-")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"cs-{slug}-{digest}" if slug else f"cs-{digest}"


def request_id(*parts: str) -> str:
    """A UUID derived from `parts`: the same call retried sends the same id, which GCE
    answers with the first call's operation instead of acting twice."""
    return str(uuid.uuid5(_REQUEST_NS, "\x1f".join(parts)))


@dataclass(frozen=True)
class MachineConfig:
    """What every instance of one GceCompute shares."""

    image: str
    disk_gb: int
    network: str
    subnetwork: str | None
    external_ip: bool
    service_account_email: str | None
    accelerators: Mapping[str, Accelerator]
    termination_action: str


def instance_body(config: MachineConfig, zone: str, request: LaunchRequest) -> compute_v1.Instance:
    machine = request.instance_type
    accelerators = []
    if not machine.startswith(BUILT_IN_GPU_FAMILIES) and machine in config.accelerators:
        gpu = config.accelerators[machine]
        accelerators.append(
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{gpu.type}",
                accelerator_count=gpu.count,
            )
        )
    has_gpu = bool(accelerators) or machine.startswith(BUILT_IN_GPU_FAMILIES)
    # GPU hosts cannot live-migrate: GCE refuses them unless maintenance terminates the VM.
    scheduling = compute_v1.Scheduling(
        on_host_maintenance="TERMINATE" if has_gpu else "MIGRATE",
        automatic_restart=not request.spot,
    )
    if request.spot:
        scheduling.provisioning_model = "SPOT"
        scheduling.instance_termination_action = config.termination_action
        scheduling.on_host_maintenance = "TERMINATE"  # spot VMs cannot migrate either
    metadata = [
        compute_v1.Items(key=META_RUN_ID, value=request.run_id),
        compute_v1.Items(key=META_JOB, value=request.job),
    ]
    if request.heartbeat_uri:
        metadata.append(compute_v1.Items(key=META_HEARTBEAT, value=request.heartbeat_uri))
    if request.boot_script is not None:
        metadata.append(compute_v1.Items(key="startup-script", value=request.boot_script))
    interface = compute_v1.NetworkInterface(network=config.network)
    if config.subnetwork:
        interface.subnetwork = config.subnetwork
    if config.external_ip:  # without it the VM reaches Prefect and GCS only through Cloud NAT
        interface.access_configs = [
            compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
        ]
    body = compute_v1.Instance(
        name=instance_name(request.run_id),
        machine_type=f"zones/{zone}/machineTypes/{machine}",
        labels={LABEL_JOB: label_value(request.job), LABEL_RUN_ID: label_value(request.run_id)},
        metadata=compute_v1.Metadata(items=metadata),
        scheduling=scheduling,
        guest_accelerators=accelerators,
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=config.image, disk_size_gb=config.disk_gb
                ),
            )
        ],
        network_interfaces=[interface],
    )
    if config.service_account_email:
        body.service_accounts = [
            compute_v1.ServiceAccount(
                email=config.service_account_email,
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ]
    return body
