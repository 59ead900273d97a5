"""GCE's refusals sorted into what the planner does next: another zone, another alternative,
or stop and tell the user which permission is missing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.api_core import exceptions as api
from google.cloud import compute_v1

from carbonshift.compute.port import AccessDenied, CapacityError, ComputeError

# Stockouts are per zone: another zone of the region may have the machines.
ZONE_CODES = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "RESOURCE_POOL_EXHAUSTED",
        "STOCKOUT",
    }
)
# GPU and CPU quotas are per region (or global): no other zone of the region will pass.
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "RESOURCE_OPERATION_RATE_EXCEEDED"})
QUOTA_REASONS = frozenset({"quotaExceeded", "rateLimitExceeded", "userRateLimitExceeded"})
_PERMISSION = re.compile(r"\b((?:compute|iam)\.[A-Za-z]+\.[A-Za-z]+)\b")
_NOT_IN_ZONE = re.compile(r"does not exist in zone|not available in zone", re.IGNORECASE)

CREDENTIALS_HELP = (
    "no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
    "key file, run `gcloud auth application-default login`, run on GCP with an attached "
    "service account, or pass a prefect-gcp GcpCredentials block's credentials"
)


class ZoneUnavailable(Exception):
    """This zone cannot launch the machine now (stockout, or the type is not offered here)."""


def permission_in(message: str, default: str) -> str:
    """The permission GCE names in a 403 (`Required 'compute.instances.create' permission`)."""
    found = _PERMISSION.search(message)
    return found.group(1) if found else default


def from_api_error(
    error: api.GoogleAPICallError, *, permission: str, region: str, machine: str, zone: str
) -> Exception:
    """What an HTTP error from a call that needs `permission` means for the caller."""
    reasons = {str(e.get("reason", "")) for e in error.errors or () if isinstance(e, dict)}
    message = str(error.message)
    if reasons & QUOTA_REASONS or isinstance(error, api.TooManyRequests):
        return CapacityError(region, machine, f"quota in {zone}: {message}")
    if isinstance(error, api.Forbidden | api.PermissionDenied):
        return AccessDenied(permission_in(message, permission), message)
    if isinstance(error, api.Unauthorized | api.Unauthenticated):
        return AccessDenied("credentials", f"{CREDENTIALS_HELP} ({message})")
    if "access to service account" in message:  # 400, not 403, when actAs is missing
        return AccessDenied("iam.serviceAccounts.actAs", message)
    if isinstance(error, api.BadRequest) and _NOT_IN_ZONE.search(message):
        return ZoneUnavailable(f"{zone}: {message}")
    if isinstance(error, api.NotFound) and f"zones/{zone}' was not found" in message:
        return ZoneUnavailable(f"{zone}: no such zone")
    return ComputeError(f"{zone}: {permission} failed: {message}")


def from_operation(
    operation: compute_v1.Operation, *, permission: str, region: str, machine: str, zone: str
) -> Exception | None:
    """None if `operation` (DONE) succeeded, else what its error means."""
    errors: Iterable[compute_v1.Errors] = operation.error.errors if operation.error else ()
    found = [(e.code, e.message) for e in errors]
    if not found:
        return None
    detail = "; ".join(f"{code}: {message}" for code, message in found)
    codes = {code for code, _ in found}
    if codes & QUOTA_CODES:
        return CapacityError(region, machine, f"quota in {zone}: {detail}")
    if codes & ZONE_CODES or "enough resources" in detail:
        return ZoneUnavailable(f"{zone}: {detail}")
    if operation.http_error_status_code == 403 or "permission" in detail.lower():
        return AccessDenied(permission_in(detail, permission), detail)
    return ComputeError(f"{zone}: {operation.operation_type} failed: {detail}")
