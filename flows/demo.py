"""`carbonshift demo`: a local Prefect server (or the one at PREFECT_API_URL), the process pool,
the project's deployments and a worker; then plan the example queue on bundled real traces
replayed as of now, print the plan, and follow the urgent job's training run.

    python -m flows.demo [--exit] [--timeout 600] [--database URL]

The server's database: `--database` (e.g. postgresql+asyncpg://USER:PASSWORD@HOST:5432/prefect,
an empty database Prefect migrates at start), else Prefect's own setting
PREFECT_API_DATABASE_CONNECTION_URL, else a fresh SQLite file under .carbonshift/prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from carbonshift.artifacts import PLAN_TABLE_KEY, artifact_key, rows_as_text
from carbonshift.cli import database_url
from carbonshift.job import load_jobs
from flows.local_stack import LocalStack

PROJECT = Path(__file__).resolve().parents[1]
QUEUE = "deployments/jobs.yaml"
DEMO_STEPS = 8000


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP) all stop the stack the same way:
    # the `with` below closes it, and close() stops the server, the worker and every flow run.
    # SIGINT is set explicitly: a shell that starts a job in the background (`&` in a script)
    # leaves it ignored, and the server, worker and flow runs would inherit that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("Interrupted: the server, the worker and their flow runs are stopped.")
        return 130


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="carbonshift demo", description=__doc__)
    parser.add_argument(
        "--exit",
        action="store_true",
        help="stop everything once the urgent job's run ends; non-zero unless it completed",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the planner and the urgent run (default 600)",
    )
    parser.add_argument(
        "--database",
        type=database_url,
        default=None,
        metavar="URL",
        help="the server's database (default: PREFECT_API_DATABASE_CONNECTION_URL, else SQLite)",
    )
    args = parser.parse_args(argv)
    home = Path(os.environ.get("CARBONSHIFT_DEMO_HOME") or PROJECT / ".carbonshift" / "prefect")
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url and args.database:
        parser.error(
            f"--database: PREFECT_API_URL names a running server ({api_url}), which has its own "
            "database; unset PREFECT_API_URL to start one on --database"
        )
    if not api_url:
        shutil.rmtree(home, ignore_errors=True)  # a fresh demo database every time (SQLite)
    with LocalStack(PROJECT, home, api_url=api_url, database_url=args.database) as stack:
        print(f"Prefect UI: {stack.ui_url}   (logs in {home / 'logs'})")
        print(
            "Deployed plan-training/daily and train-model/default; worker on carbonshift-process."
        )
        planning = stack.run_deployment(
            "plan-training",
            "daily",
            {
                "queue_file": QUEUE,
                # The example model trains DEMO_STEPS steps: well under a minute per run here.
                "config": {"training": {"options": {"steps": str(DEMO_STEPS)}}},
            },
        )
        print(f"Planning {QUEUE} on bundled 2023 traces replayed as of now ...")
        planned = stack.wait(planning, args.timeout)
        if planned["state"]["type"] != "COMPLETED":
            print(f"The planning run ended {planned['state']['type']}: see the UI.")
            return 1
        summary = stack.latest_artifact(PLAN_TABLE_KEY)
        if summary is not None:
            print(rows_as_text(json.loads(summary["data"])))
        print(f"Plan artifacts: {stack.ui_url}/artifacts   runs: {stack.ui_url}/runs")
        code = follow_urgent(stack, args.timeout)
        if args.exit:
            return code
        print("The stack stays up for you to explore; press Ctrl-C to stop it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping the server, the worker and their flow runs ...")
    return 0


def follow_urgent(stack: LocalStack, timeout_s: float) -> int:
    urgent = [j.name for j in load_jobs(PROJECT / QUEUE).jobs if j.urgent]
    if not urgent:
        print("No urgent job in the queue: its runs start at their planned times.")
        return 0
    name = urgent[0]
    runs = stack.runs_tagged(f"carbonshift-job:{name}")
    if not runs:
        print(f"The urgent job {name} was not scheduled: see its plan artifact.")
        return 1
    run = max(runs, key=lambda r: r["created"])
    print(f"Urgent job {name}: training run {stack.ui_url}/runs/flow-run/{run['id']} ...")
    done = stack.wait(run["id"], timeout_s)
    state = done["state"]["type"]
    print(f"Urgent job {name}: {state}")
    record = stack.latest_artifact(artifact_key("emissions", name))
    if record is not None:
        print(record["data"])
    return 0 if state == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
