"""AWS SDK errors as the compute port's: capacity moves the run to the next alternative, access
fails it at once naming the IAM action, anything else is a ComputeError naming the call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from carbonshift.clouds import aws, iam
from carbonshift.compute.port import AccessDenied, CapacityError, ComputeError

# No capacity or quota for this type here now: the plan's next alternative may have some.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "Unsupported",  # the type is not offered in the zone AWS picked
    }
)
# Why an instance ended before it ran, when the reason is capacity (spot reclaimed at once).
CAPACITY_REASONS = frozenset(
    {
        "Server.InsufficientInstanceCapacity",
        "Server.SpotInstanceTermination",
        "Server.SpotInstanceShutdown",
    }
)
NO_CREDENTIALS = (
    "no AWS credentials found (environment, ~/.aws, instance role, or a boto3.Session from "
    "your Prefect AwsCredentials block)"
)


def port_error(
    error: Exception,
    region: str,
    service: str,
    operation: str,
    instance_type: str = "",
    hint: str = "",
) -> ComputeError:
    """The port's error for an SDK error of `service` `operation` in `region`; `hint` follows
    an access error's detail (what else the call needs)."""
    operation = getattr(error, "operation_name", None) or operation
    if aws.is_access_error(error):
        no_credentials = isinstance(error, aws.NoCredentialsError)
        detail = NO_CREDENTIALS if no_credentials else aws.describe(error)
        return AccessDenied(iam.action(service, operation), f"{region}: {detail}{hint}")
    if aws.error_code(error) in CAPACITY_CODES:
        return CapacityError(region, instance_type, aws.describe(error))
    return ComputeError(f"{region} {service}:{operation}: {aws.describe(error)}")


@contextmanager
def as_port_errors(
    region: str, service: str, operation: str, instance_type: str = "", hint: str = ""
) -> Iterator[None]:
    try:
        yield
    except aws.SDK_ERRORS as e:
        raise port_error(e, region, service, operation, instance_type, hint) from e
