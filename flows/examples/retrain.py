"""An example retraining pipeline: validate new data, then let carbonshift pick when and where
the retraining runs. Deploy it like any flow, or run it: `python -m flows.examples.retrain`."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from carbonshift.job import JobSpec
from flows.api import schedule_training, wait_for_training


@task
def validate_dataset(version: str) -> int:
    """Your own checks go here; this one only insists on a version."""
    if not version:
        raise ValueError("dataset version: give the version to train on, e.g. 2026-11-27")
    return len(version)


@flow(name="retrain-pipeline")
def retrain_pipeline(
    dataset_version: str = "latest", wait: bool = False, regions: list[str] | None = None
) -> str:
    """Validate the dataset, then schedule a carbon-aware retraining run.

    Args:
        dataset_version: the data to train on.
        wait: block until the training run ends (else return once it is scheduled).
        regions: candidate regions, home first.
    """
    validate_dataset(dataset_version)
    job = JobSpec.model_validate(
        {
            "name": f"retrain-{dataset_version}".lower().replace("_", "-")[:60],
            "work": {"duration": "2h", "instance_type": "g5.xlarge"},
            "within": "24h",
            "regions": regions or ["aws:eu-west-2", "aws:eu-central-1", "aws:us-east-1"],
            "entrypoint": "my_project.train:main",
        }
    )
    run = schedule_training(job)
    logger = get_run_logger()
    logger.info("retraining %s scheduled for %s", job.name, run.expected_start_time)
    if wait:
        state = wait_for_training(run)
        logger.info("retraining %s ended %s", job.name, state.name)
        return state.type.value
    return str(run.id)


if __name__ == "__main__":
    retrain_pipeline()
