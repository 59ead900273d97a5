"""A local Prefect stack for the demo and the end-to-end test: a server on SQLite (or on the
database at `database_url` / PREFECT_API_DATABASE_CONNECTION_URL, e.g. PostgreSQL; or the server
at PREFECT_API_URL), the process work pool, the project's deployments and a worker.

Every process it starts, and every process those start (Prefect runs each flow run in a
session of its own, out of reach of a terminal's Ctrl-C), is stopped by `close()`, whatever
happened: SIGTERM, then SIGKILL after `STOP_GRACE_S`. The server and the worker run in sessions of
their own too, so a Ctrl-C reaches only the process that owns the stack, which stops them in
order; a second Ctrl-C (or SIGTERM) during `close()` skips the grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

POOL = "carbonshift-process"
GPU_POOLS = ("carbonshift-gpu-aws", "carbonshift-gpu-gcp")
ZOMBIE_AUTOMATION = "carbonshift: crash zombie flow runs"
ZOMBIE_AUTOMATION_FILE = Path(__file__).resolve().parent.parent / "deployments" / "zombie-runs.yaml"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
HEALTH_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0  # SIGTERM to SIGKILL; Ctrl-C must leave nothing running after 10 s


def zombie_automation(within_s: float = 90.0) -> Any:
    """deployments/zombie-runs.yaml's automation (what users create with `prefect automation
    create --from-file`), its window set to `within_s`."""
    import yaml
    from prefect.events.schemas.automations import AutomationCore

    (raw,) = yaml.safe_load(ZOMBIE_AUTOMATION_FILE.read_text())["automations"]
    raw["trigger"]["within"] = within_s
    raw["actions"][0]["message"] = (
        f"No heartbeat for {within_s:g} s: the flow run's process is gone"
    )
    return AutomationCore.model_validate(raw)


def crash_zombie_runs(within_s: float = 90.0) -> str:
    """Create (or find) the automation that marks a flow run Crashed when its heartbeats stop:
    a worker or machine that dies runs no hook and reports nothing, so without it the run
    stays Running for ever and its job is never re-planned. On the server that the current
    Prefect settings name (PREFECT_API_URL); returns the automation's id.

    Flow runs send heartbeats only with PREFECT_FLOWS_HEARTBEAT_FREQUENCY set (in the workers'
    environment; Prefect sends one every 30 s at the most often, whatever is asked), so
    `within_s` must exceed that frequency, with room for a busy machine. Prefect Cloud has
    this built in ("Unresponsive run detection"). Prefect's guide: "How to detect and respond
    to zombie flows"."""
    from prefect.client.orchestration import get_client

    automation = zombie_automation(within_s)
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        return str(found[0].id if found else client.create_automation(automation))


def redact_url(url: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    user_info, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in user_info:
        return url
    return f"{scheme}://{user_info.split(':', 1)[0]}:***@{host}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_exe() -> str:
    found = Path(sys.executable).with_name("prefect")
    return str(found) if found.exists() else (shutil.which("prefect") or "prefect")


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class LocalStack:
    def __init__(
        self,
        project_dir: Path,
        home: Path,
        *,
        api_url: str | None = None,
        database_url: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.project_dir = project_dir
        # None: Prefect's own setting (the environment's), else SQLite under `home`.
        self.database_url = database_url
        self.home = home
        self.log = log
        self.api_url = api_url or ""
        self.ui_url = api_url.removesuffix("/api") if api_url else ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []
        self._logs = home / "logs"

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PWD": str(self.project_dir),
        }
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        return env

    def start(self) -> LocalStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._logs.mkdir(exist_ok=True)
        if self.api_url and healthy(self.api_url):
            self.log(f"Using the Prefect server at {self.api_url}")
        else:
            self._start_server()
        # prefect.yaml also has a train-model deployment per GPU pool, and `deploy --all`
        # refuses a deployment whose pool does not exist; the demo routes nothing to them.
        for pool in (POOL, *GPU_POOLS):
            self._run(
                [prefect_exe(), "work-pool", "create", pool, "--type", "process", "--overwrite"]
            )
        self._run([prefect_exe(), "--no-prompt", "deploy", "--all"])
        self._spawn("worker", [prefect_exe(), "worker", "start", "--pool", POOL])
        return self

    def close(self) -> None:
        hurry = threading.Event()
        previous = _hold_signals(hurry)
        try:
            self._stop_all(hurry)
        finally:
            _restore_signals(previous)
            for file in self._files:
                file.close()
            self._files.clear()

    def _stop_all(self, hurry: threading.Event) -> None:
        procs = [p for p in self._procs if p.poll() is None]
        # Find the flow runs (and what they started) before anything exits: orphans are
        # re-parented and could not be found any more.
        tree = descendants({p.pid for p in procs})
        start = time.monotonic()
        # Flow runs first, while the server is up to hear how they ended; then the rest.
        for pid in tree:
            _signal(pid, signal.SIGTERM)
        while time.monotonic() < start + STOP_GRACE_S / 2 and not hurry.is_set():
            if not any(map(_alive, tree)):
                break
            hurry.wait(0.1)
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        while time.monotonic() < start + STOP_GRACE_S and not hurry.is_set():
            if all(p.poll() is not None for p in procs) and not any(map(_alive, tree)):
                break
            hurry.wait(0.1)
        tree |= descendants({p.pid for p in procs if p.poll() is None})
        for pid in tree:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._procs.clear()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- talking to the server (plain REST, so this process needs no Prefect settings) ---------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        # A fresh SQLite server answers 503 now and then while it is busy: try again briefly.
        for attempt in range(10):
            try:
                response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
            except httpx.TransportError:
                if attempt == 9:
                    raise
                time.sleep(1)
                continue
            if response.status_code < 500 or attempt == 9:
                break
            time.sleep(1)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def deployment(self, flow_name: str, name: str) -> dict[str, Any]:
        found = self.api(
            "POST",
            "/deployments/filter",
            {
                "flows": {"name": {"any_": [flow_name]}},
                "deployments": {"name": {"any_": [name]}},
            },
        )
        if not found:
            raise RuntimeError(f"no deployment {flow_name}/{name}")
        result: dict[str, Any] = found[0]
        return result

    def run_deployment(self, flow_name: str, name: str, parameters: dict[str, Any]) -> str:
        deployment = self.deployment(flow_name, name)
        run = self.api(
            "POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters}
        )
        return str(run["id"])

    def wait(self, run_id: str, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """The flow run once final, or once `timeout_s` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            run: dict[str, Any] = self.api("GET", f"/flow_runs/{run_id}")
            if run["state"]["type"] in FINAL or time.monotonic() > deadline:
                return run
            time.sleep(poll_s)

    def runs_tagged(self, tag: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api(
            "POST", "/flow_runs/filter", {"flow_runs": {"tags": {"all_": [tag]}}}
        )
        return runs

    def latest_artifact(self, key: str) -> dict[str, Any] | None:
        found = self.api(
            "POST", "/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}}
        )
        return found[0] if found else None

    def _start_server(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.ui_url = f"http://127.0.0.1:{port}"
        database = self.env.get("PREFECT_API_DATABASE_CONNECTION_URL")
        where = redact_url(database) if database else f"SQLite in {self.home}"
        self.log(f"Starting a Prefect server ({where}) on {self.ui_url} ...")
        server = self._spawn(
            "server",
            [
                prefect_exe(),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--analytics-off",
            ],
        )
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not healthy(self.api_url):
            if server.poll() is not None:
                raise RuntimeError(f"the Prefect server exited: see {self._logs / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server was not healthy after {HEALTH_TIMEOUT_S} s")
            time.sleep(0.5)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        out = (self._logs / f"{name}.log").open("ab")
        self._files.append(out)
        proc = subprocess.Popen(
            cmd,
            cwd=self.project_dir,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # close() stops it, not the terminal's Ctrl-C
        )
        self._procs.append(proc)
        return proc

    def _run(self, cmd: list[str]) -> None:
        result = subprocess.run(
            cmd,
            cwd=self.project_dir,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{result.stdout}\n{result.stderr}")


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc, else `ps`)."""
    table: dict[int, int] = {}
    proc = Path("/proc")
    if (proc / "self" / "stat").exists():
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                table[int(entry.name)] = int(fields[1])
        return table
    try:
        out = subprocess.run(
            ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return table
    for line in out.splitlines():
        pid, ppid = line.split()
        table[int(pid)] = int(ppid)
    return table


def descendants(roots: set[int]) -> set[int]:
    """Every process below `roots` (not the roots themselves)."""
    table = _process_table()
    found: set[int] = set()
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        for pid, ppid in table.items():
            if ppid == parent and pid not in found and pid not in roots:
                found.add(pid)
                frontier.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False  # exited; its parent has not reaped it yet
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# What `signal.signal` returns and takes back: a handler, SIG_DFL/SIG_IGN, or None (set in C).
_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _hold_signals(hurry: threading.Event) -> dict[int, _Handler]:
    """While stopping: Ctrl-C and SIGTERM mean 'faster', not 'abandon the cleanup'."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, _Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: hurry.set())
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
