"""Cloud credentials kept in Prefect blocks, for the core's CloudAccess.

prefect-aws and prefect-gcp need not be installed: the block documents are read by their type
slugs (`aws-credentials`, `gcp-credentials`, the fields those collections define) and turned
into a boto3 session / google credentials in this process. Nothing secret goes into parameters,
logs, artifacts or user data; without a block name the SDKs' default chains apply."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from carbonshift.config import TrainingConfig
from carbonshift.runs import CloudAccess

AWS_SLUG, GCP_SLUG = "aws-credentials", "gcp-credentials"


def _block_data(name: str, slug: str, field: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name, slug, include_secrets=True)
        except ObjectNotFound:
            raise ValueError(
                f"{field}: no {slug} block named {name!r} on this Prefect server; create it "
                f"(UI: Blocks, or prefect block create {slug}) or leave {field} unset to use the "
                "SDK's default credentials"
            ) from None
    return dict(document.data)


def aws_session(name: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    data = _block_data(name, AWS_SLUG, "compute.aws.credentials_block")
    keys = {
        "aws_access_key_id": data.get("aws_access_key_id"),
        "aws_secret_access_key": data.get("aws_secret_access_key"),
        "aws_session_token": data.get("aws_session_token"),
        "profile_name": data.get("profile_name"),
        "region_name": data.get("region_name"),
    }
    return boto3.Session(**{k: v for k, v in keys.items() if v})


def gcp_credentials(name: str) -> Any:
    from google.oauth2 import service_account

    data = _block_data(name, GCP_SLUG, "compute.gcp.credentials_block")
    if data.get("service_account_info"):
        info = data["service_account_info"]
        return service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    if data.get("service_account_file"):
        path = data["service_account_file"]
        return service_account.Credentials.from_service_account_file(path)  # type: ignore[no-untyped-call]
    raise ValueError(
        f"compute.gcp.credentials_block: block {name!r} holds no service account (info or "
        "file); fill one in, or leave the setting unset to use Application Default Credentials"
    )


def cloud_access(config: TrainingConfig) -> CloudAccess:
    """Sessions from the configured blocks; only for a cloud run that names one."""
    compute = config.compute
    if not compute.remote_runs:
        return CloudAccess()
    aws = compute.aws.credentials_block
    gcp = compute.gcp.credentials_block
    return CloudAccess(
        aws_session=aws_session(aws) if aws else None,
        gcp_credentials=gcp_credentials(gcp) if gcp else None,
    )
