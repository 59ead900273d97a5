"""A job file parsed in a fork while the command starts: the same values as parsing it here, or
nothing (and it is parsed here) when the fork failed or the file changed; no fork outlives the
command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from carbonshift import fast_yaml, forks, prefetch
from carbonshift.job import load_jobs
from carbonshift.launch import _jobs_file

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deployments" / "jobs.yaml"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the prefetch forks on Linux")


@pytest.fixture(autouse=True)
def _no_leftovers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Fork even if an earlier test left a thread behind (the command forks before any thread
    # starts); the fork parses a file and touches no lock.
    monkeypatch.setattr(forks, "can_fork", lambda: True)
    yield
    prefetch.stop_all()


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _wait_until_exited(pid: int) -> None:
    """Until the fork is a zombie (exited, not yet reaped), without reaping it."""
    by = time.monotonic() + 60
    while Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
        assert time.monotonic() < by, "the fork did not finish"
        os.sched_yield()


def test_the_prefetched_values_are_the_parsed_values(tmp_path: Path) -> None:
    from benchmarks.queues import make_queue

    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": make_queue(300, seed=4)}))
    prefetch.start(path)
    assert prefetch.take(path) == (True, fast_yaml.safe_load(path.read_text()))
    assert prefetch.take(path) == (False, None)  # taken once


def test_a_file_changed_after_the_fork_began_is_parsed_here(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(EXAMPLE.read_text())
    prefetch.start(path)
    (pid, _, _) = prefetch._PENDING[str(path)]
    _wait_until_exited(pid)  # so the change is the parent's to see, not the fork's
    path.write_text("jobs: []\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert prefetch.take(path) == (False, None)
    assert load_jobs(path).jobs == []
    assert _reaped(pid)


def test_a_bad_file_reads_the_same_error_with_or_without_the_fork(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n  - name: a\n   bad: [\n")
    with pytest.raises(ValueError) as here:
        load_jobs(path)
    prefetch.start(path)
    with pytest.raises(ValueError) as prefetched:
        load_jobs(path)
    assert str(prefetched.value) == str(here.value) and "not valid YAML at line" in str(here.value)
    prefetch.start(tmp_path / "missing.yaml")  # nothing to start: load_jobs says why
    assert not prefetch._PENDING


def test_a_fork_never_taken_is_killed_and_reaped(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(EXAMPLE.read_text())
    prefetch.start(path)
    (pid, _, _) = prefetch._PENDING[str(path)]
    prefetch.stop_all()
    assert _reaped(pid) and not prefetch._PENDING


@pytest.mark.parametrize(
    ("argv", "found"),
    [
        (["plan", "--jobs", "a.yaml", "--now", "x"], "a.yaml"),
        (["plan", "--now", "x", "--jobs=b.yaml"], "b.yaml"),
        (["plan", "--jobs"], None),
        (["plan", "--", "--jobs", "c.yaml"], None),
        (["backtest", "--jobs", "a.yaml"], None),
        ([], None),
    ],
)
def test_the_job_file_of_a_plan_command_line(argv: list[str], found: str | None) -> None:
    assert _jobs_file(argv) == found


def test_the_command_prints_what_the_module_prints(tmp_path: Path) -> None:
    argv = ["plan", "--jobs", str(EXAMPLE), "--now", "2023-06-01T00:00Z", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    via_launch = subprocess.run(
        [sys.executable, "-m", "carbonshift", *argv], capture_output=True, text=True, env=env
    )
    via_cli = subprocess.run(
        [sys.executable, "-m", "carbonshift.cli", *argv], capture_output=True, text=True, env=env
    )
    assert via_launch.returncode == via_cli.returncode == 0, via_launch.stderr
    assert via_launch.stdout == via_cli.stdout and via_launch.stderr == via_cli.stderr
    assert '"plans":[' in via_launch.stdout


def test_a_pipe_is_not_prefetched_so_it_is_read_once_here(tmp_path: Path) -> None:
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    prefetch.start(fifo)
    assert not prefetch._PENDING
