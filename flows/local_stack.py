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
from typing import IO

import httpx

POOL = "carbonshift-process"
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
