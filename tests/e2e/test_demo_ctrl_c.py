"""End to end: `carbonshift demo` stops on Ctrl-C. The demo runs in its own session (as a
terminal would run it); SIGINT goes to its whole process group, as Ctrl-C does. Within 10 s
every process of that session, and every process the demo started (the server, the worker and
the flow runs, which Prefect starts in sessions of their own), must be gone."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 10.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a live, non-zombie process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[3])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def _table() -> dict[int, tuple[int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            table[int(entry)] = stat
    return table


def session_and_tree(root: int) -> set[int]:
    """Every live process in `root`'s session, and every descendant of `root`."""
    table = _table()
    found = {pid for pid, (_, sid) in table.items() if sid == root}
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return (found | tree) & set(table)


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _stat(pid) is not None}


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Demo:
    def __init__(self, args: list[str], home: Path, sigint_ignored: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "CARBONSHIFT_DEMO_HOME": str(home)}
        env.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "carbonshift.cli", "demo", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # As a script's background job (`carbonshift demo &`) starts: SIGINT ignored.
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if text in self.lines.get(timeout=1.0):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        pytest.fail(f"the demo never printed {text!r}:\n{''.join(self.output)}")

    def ctrl_c(self) -> tuple[set[int], float]:
        """SIGINT to the demo's process group; the processes that were running, and when."""
        running = session_and_tree(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGINT)
        return running, time.monotonic()

    def kill_all(self) -> None:
        for pid in alive(session_and_tree(self.proc.pid)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        demo.kill_all()
        demo.proc.wait(timeout=30)
        demo.reader.join(timeout=30)
        assert demo.proc.stdout is not None
        demo.proc.stdout.close()


def assert_all_stop(demo: Demo, running: set[int], sent_at: float) -> None:
    """The requirement itself is a time: nothing left `STOP_WITHIN_S` after the Ctrl-C."""

    def left() -> set[int]:
        return alive(running | session_and_tree(demo.proc.pid))

    wait_until(
        lambda: not left(),
        timeout_s=STOP_WITHIN_S,
        since=sent_at,
        what=lambda: f"still running after Ctrl-C: { {p: _cmdline(p) for p in left()} }",
    )
    assert demo.proc.wait(timeout=5) in (0, 1, 130, -signal.SIGINT)


def wait_for_process(demo: Demo, marker: str, timeout_s: float) -> None:
    """Until a process whose command line holds `marker` runs in the demo's session or tree."""
    wait_until(
        lambda: any(marker in _cmdline(p) for p in session_and_tree(demo.proc.pid)),
        timeout_s=timeout_s,
        what=lambda: f"no {marker!r} process appeared:\n{''.join(demo.output)}",
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_stops_the_demo_while_a_flow_runs(demos: list[Demo], tmp_path: Path) -> None:
    demo = Demo(["--timeout", "300"], tmp_path / "prefect")
    demos.append(demo)
    demo.wait_for("Urgent job", 420)
    wait_for_process(demo, "prefect.engine", 120)  # a flow run's process
    running, sent_at = demo.ctrl_c()
    assert any("prefect.engine" in _cmdline(p) for p in running)
    assert_all_stop(demo, running, sent_at)
    assert "Traceback" not in "".join(demo.output)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "background-job"])
def test_ctrl_c_while_the_stack_starts(demos: list[Demo], tmp_path: Path,
                                       sigint_ignored: bool) -> None:
    demo = Demo(["--exit", "--timeout", "300"], tmp_path / "prefect", sigint_ignored)
    demos.append(demo)
    demo.wait_for("Starting a Prefect server", 120)
    # The server process is up but not yet serving: the stack is still starting (the demo
    # prints 'Urgent job' only once it has planned, long after the server answers).
    wait_for_process(demo, "server start", 60)
    running, sent_at = demo.ctrl_c()
    assert_all_stop(demo, running, sent_at)
    assert "Traceback" not in "".join(demo.output)
