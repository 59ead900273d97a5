"""The project's side of `carbonshift train` and `carbonshift reap` (the CLI checks the arguments,
then runs `python -m flows.cli train|reap REQUEST_JSON` from the clone).

`train` runs flow `train-now`: the job planned to start now, then its `train-model` run as a
subflow, in this process (a Prefect server from PREFECT_API_URL, or a temporary one). Exit 0 when
the training completed, 3 when it stopped at a checkpoint (the output says where to resume
from), 1 when it failed.
"""

from __future__ import annotations

import json
import signal
import sys

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Failed

from carbonshift.adhoc import ReapRequest, TrainRequest, adhoc_job, training_config
from carbonshift.catalog import default_catalog
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import NotRunnable
from flows.train import train_model
from tasks.adhoc import plan_now

EXIT_STOPPED = 3


@flow(name="train-now")
def train_now(job: JobSpec, config: TrainingConfig) -> State:
    """Plan `job` to start now and run its training."""
    try:
        plan = plan_now(job, config)
    except NotRunnable as e:
        return Failed(message=str(e))
    ended = train_model(job, plan, None, config, return_state=True)
    # The subflow's own state object would be read as "all states completed": pass on its
    # outcome as this run's.
    return State(type=ended.type, name=ended.name, message=ended.message)


def train(request: TrainRequest) -> int:
    job = adhoc_job(request, default_catalog())
    state = train_now(job, training_config(request), return_state=True)
    code = 0 if state.is_completed() and state.name == "Completed" else 1
    if state.is_completed() and state.name != "Completed":
        code = EXIT_STOPPED
    result = {"job": job.name, "state": state.name, "message": state.message, "exit": code}
    if request.json_output:
        print(json.dumps(result))
    else:
        print(f"{job.name}: {state.name}: {state.message}")
    return code


def reap(request: ReapRequest) -> int:
    """Exit 0 when every region was swept and every release succeeded, 1 otherwise."""
    from flows.reap import reap_main

    result = reap_main(request, training_config(request))
    failed = [i for i in result["instances"] if i.get("error")]
    if request.json_output:
        print(json.dumps(result))
    else:
        print(f"terminated {result['terminated']} instance(s)")
        for i in result["instances"]:
            done = "terminated" if i["released"] else f"NOT terminated: {i.get('error')}"
            print(f"  {i['region']} {i['handle']} (run {i['run_id']}): {i['reason']}; {done}")
        for region, why in result["errors"].items():
            print(f"  {region}: not swept: {why}", file=sys.stderr)
    return 1 if result["errors"] or failed else 0


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM stop the run the same way: the supervisor asks the trainer (or the VM)
    # to checkpoint, then releases the instance. Set explicitly: a background start ignores
    # SIGINT, and the default SIGTERM would end the process with the instance still running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("train", "reap"):
        print("usage: python -m flows.cli train|reap REQUEST_JSON", file=sys.stderr)
        return 2
    try:
        if args[0] == "train":
            return train(TrainRequest.model_validate_json(args[1]))
        return reap(ReapRequest.model_validate_json(args[1]))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run stopped at a checkpoint and released its instance")
        return 130


if __name__ == "__main__":
    sys.exit(main())
