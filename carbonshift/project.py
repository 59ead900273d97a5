"""The project folder's code, run from the CLI. flows/, tasks/, prefect.yaml and deployments/
are project code, run from a clone and not installed (as top-level `flows` and `tasks` they
would collide with any other project's); `pip install -e .` from a clone makes this the clone.
What drives Prefect runs as its own process: the core never imports Prefect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

__all__ = ["PROJECT", "demo_env", "run_project_module"]


def demo_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for project code: the project folder first on PYTHONPATH, so that
    `flows.*` imports from any working directory (and the server, worker and flow runs it
    starts find the same code)."""
    if not (PROJECT / "flows" / "demo.py").is_file() or not (PROJECT / "prefect.yaml").is_file():
        raise ValueError(
            f"no flows/ and prefect.yaml in {PROJECT}: this command runs the project's flows "
            "from a clone of the project; install it there with `pip install -e .`"
        )
    rest = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), *rest])}


def run_project_module(module: str, argv: Sequence[str]) -> int:
    """`python -m module argv...` with the project on the path; its exit code (128+signal when
    killed). SIGTERM is passed on; Ctrl-C reaches it too (one process group) and we wait for it
    to stop what it started: killing it now would orphan its servers, workers and instances."""
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], env=demo_env(os.environ))
    forward = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, forward)
    return 128 - code if code < 0 else code
