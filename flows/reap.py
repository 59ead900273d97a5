"""Flow `reap-instances`: terminate carbonshift instances whose run ended or went silent.

Hooks release a run's instances when it is cancelled or crashes; a worker killed with -9, or a
flow process that dies, runs no hook. This sweep, scheduled (prefect.yaml) or run by
`carbonshift reap`, catches those: each region's instances tagged by carbonshift, judged by
their run's state on this server and by their heartbeat (carbonshift.reap)."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from pydantic import Field

from carbonshift.adhoc import ReapRequest
from carbonshift.config import TrainingConfig
from carbonshift.reap import markdown
from tasks.reaping import reap_region

ARTIFACT_KEY = "reaped-instances"


@flow(name="reap-instances")
def reap_instances(
    regions: Annotated[list[str], Field(min_length=1)],
    stale_after_s: Annotated[float, Field(gt=0)] = 900.0,
    config: TrainingConfig | None = None,
) -> State:
    """Sweep each region; publish what was terminated; fail if a region could not be swept.

    Args:
        regions: where to look, as in job files (`aws:us-east-1`, `gcp:europe-west4`). With
            `config.compute.kind` local, this machine's compute state is swept once instead.
        stale_after_s: an instance whose last heartbeat (or, before its first, its launch) is
            older than this is terminated, even while its run looks active.
        config: the training configuration the runs were launched with (compute, credentials
            blocks).
    """
    config = config or TrainingConfig()
    logger = get_run_logger()
    # Local compute is one state folder, whatever the region (as release_everywhere sees it).
    targets = list(dict.fromkeys(regions)) if config.compute.remote_runs else ["local"]
    if not config.compute.remote_runs:
        logger.warning(
            "compute.kind is local: sweeping this machine's compute state (%s), not %s; pass "
            "the training config your cloud runs use (compute.kind cloud) to sweep clouds",
            config.compute.state_dir,
            ", ".join(regions),
        )
    futures = {r: reap_region.submit(r, stale_after_s, config) for r in targets}
    records: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for region, future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            errors[region] = f"{type(outcome).__name__}: {outcome}"
            logger.error("%s not swept: %s", region, errors[region])
        else:
            records.extend(outcome)
    terminated = sum(1 for r in records if r["released"])
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=markdown(records, errors),
        description=f"instances terminated by the reaper in {', '.join(targets)}",
    )
    summary = {"terminated": terminated, "instances": records, "errors": errors}
    failed = [r for r in records if r["error"]]
    message = f"terminated {terminated} instance(s) in {', '.join(targets)}"
    if errors or failed:
        problems = [f"{region}: {e}" for region, e in errors.items()]
        problems += [f"{r['handle']}: {r['error']}" for r in failed]
        return Failed(message=f"{message}; failed: {'; '.join(problems)}", data=summary)
    return Completed(message=message, data=summary)


def reap_main(request: ReapRequest, config: TrainingConfig | None = None) -> dict[str, Any]:
    """`carbonshift reap`: run the flow; {"terminated": n, "instances": [...], "errors": {...}}
    (errors: region -> why it was not swept; an instance's failed release is in its record)."""
    state = reap_instances(
        regions=request.regions,
        stale_after_s=request.stale_after_s,
        config=config,
        return_state=True,
    )
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):  # the flow itself failed (bad parameters, say)
        raise summary
    return dict(summary)
