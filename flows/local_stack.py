"""A local Prefect stack for the demo and the end-to-end test: a server on SQLite (or the one
at PREFECT_API_URL), the process work pool, the project's deployments and a worker.

Every process it starts is stopped by `close()`, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

POOL = "carbonshift-process"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
HEALTH_TIMEOUT_S = 120.0


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
        log: Callable[[str], None] = print,
    ) -> None:
        self.project_dir = project_dir
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
        return env

    def start(self) -> LocalStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._logs.mkdir(exist_ok=True)
        if self.api_url and healthy(self.api_url):
            self.log(f"Using the Prefect server at {self.api_url}")
        else:
            self._start_server()
        self._run([prefect_exe(), "work-pool", "create", POOL, "--type", "process", "--overwrite"])
        self._run([prefect_exe(), "--no-prompt", "deploy", "--all"])
        self._spawn("worker", [prefect_exe(), "worker", "start", "--pool", POOL])
        return self

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        for file in self._files:
            file.close()
        self._files.clear()

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
        self.log(f"Starting a Prefect server (SQLite in {self.home}) on {self.ui_url} ...")
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
