"""A Prefect server on PostgreSQL, for the scale test tier and the scale benchmark.

    from tools.pgstack import postgres, prefect_server, create_process_pool, Worker

    with postgres(tmp) as db_url, prefect_server(db_url, home=tmp / "home") as api_url:
        create_process_pool(api_url, "carbonshift-gpu-aws", limit=2, home=tmp / "home")
        with Worker(api_url, "carbonshift-gpu-aws", home=tmp / "home", cwd=project):
            ...

PostgreSQL (15 here) refuses to run as root: as root, every PostgreSQL command runs as the
`postgres` user (`runuser`), and its data directory is a fresh folder under the system temp
folder (a pytest tmp_path is private to root, out of the `postgres` user's reach); otherwise it
runs as the current user under `tmp_dir`. Durability is off (fsync, synchronous commit, full
page writes): the database lives for one test session or one benchmark.

Everything started here runs in a session of its own (a terminal's Ctrl-C reaches only the
Python process) and is stopped on exit from its `with`, error or KeyboardInterrupt included.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from flows.local_stack import descendants, free_port, healthy, prefect_exe

PG_USER = "postgres"
DATABASE = "prefect"
HEALTH_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql."""


def pg_bin(name: str) -> str:
    """Path to a PostgreSQL program: PATH first, then the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if versions:
        return versions[-1]
    raise PostgresMissing(
        f"{name} not found: install PostgreSQL (apt-get install postgresql) or put its bin "
        "folder on PATH"
    )


def postgres_available() -> bool:
    try:
        pg_bin("initdb")
        pg_bin("pg_ctl")
    except PostgresMissing:
        return False
    return not _as_root() or shutil.which("runuser") is not None


def _as_root() -> bool:
    return os.geteuid() == 0


def _pg_cmd(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if _as_root() else cmd


def _pg_run(cmd: list[str], what: str) -> None:
    result = subprocess.run(
        _pg_cmd(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


@contextlib.contextmanager
def postgres(tmp_dir: Path) -> Iterator[str]:
    """A fresh PostgreSQL server on a free port; yields a `postgresql+asyncpg://` URL to its
    empty `prefect` database. Stopped and its data removed on exit."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if _as_root():
        # Short path: the unix socket's path must stay under ~100 bytes.
        root = Path(tempfile.mkdtemp(prefix="csh-pg-"))
        shutil.chown(root, PG_USER, PG_USER)
    else:
        root = Path(tempfile.mkdtemp(prefix="pg-", dir=tmp_dir))
    data, log = root / "data", root / "server.log"
    port = free_port()
    started = False
    try:
        _pg_run(
            [initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            "initdb",
        )
        options = " ".join(
            [
                f"-p {port}",
                f"-k {root}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
            ]
        )
        # pg_ctl starts the server in a session of its own and -w waits until it accepts.
        started = True
        _pg_run(
            [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], "pg_ctl start"
        )
        _pg_run(
            [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, DATABASE],
            "createdb",
        )
        yield f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        try:
            if started:
                # immediate: no checkpoint to write, the data is thrown away next
                _pg_run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], "pg_ctl stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


def create_database(db_url: str, name: str) -> str:
    """A new empty database `name` on the server of `db_url` (from `postgres`); its URL."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    base, _, _ = db_url.rpartition("/")

    async def create() -> None:
        connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return f"{base}/{name}"


def prefect_env(api_url: str, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Prefect command talking to `api_url`, with its own PREFECT_HOME."""
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_URL": api_url.removesuffix("/api"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **(extra or {}),
    }


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process and everything below it, SIGKILL what is left after `grace_s`."""
    if proc.poll() is not None:
        return
    tree = descendants({proc.pid})
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    tree |= descendants({proc.pid}) if proc.poll() is None else set()
    for pid in [proc.pid, *tree]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _spawn(
    cmd: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # stopped by us, not by the terminal's Ctrl-C
    )
    return proc, out


@contextlib.contextmanager
def prefect_server(
    db_url: str, home: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`prefect server start` on `db_url` (analytics off) on a free port; yields its API URL
    once /api/health answers. `extra_env`: server settings (e.g. the proactive granularity)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(
        api_url, home, {"PREFECT_API_DATABASE_CONNECTION_URL": db_url, **(extra_env or {})}
    )
    env.pop("PREFECT_API_URL")  # the server itself is not a client of another server
    cmd = [prefect_exe(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc, out = _spawn([*cmd, "--analytics-off"], env, home / "logs" / "server.log")
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not healthy(api_url):
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited: see {home / 'logs/server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server was not healthy after {HEALTH_TIMEOUT_S} s")
            time.sleep(0.3)
        yield api_url
    finally:
        try:
            _stop_group(proc)
        finally:
            out.close()


def prefect_cli(api_url: str, home: Path, *args: str, cwd: Path | None = None) -> str:
    """Run `prefect ARGS` against `api_url`; its output, or RuntimeError with it."""
    result = subprocess.run(
        [prefect_exe(), *args],
        cwd=cwd,
        env=prefect_env(api_url, home, {"PREFECT_CLI_PROMPT": "false"}),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def create_process_pool(api_url: str, name: str, limit: int | None, home: Path) -> None:
    """A process work pool (replaced if it exists) running at most `limit` flow runs at once.

    Through the API, as `prefect work-pool create NAME --type process --overwrite` and
    `prefect work-pool set-concurrency-limit NAME LIMIT` make it (the process worker's default
    job template): one request instead of two CLI processes of ~2 s each. `home` is unused
    (kept for callers)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.workers.process import ProcessWorker

    pool = WorkPoolCreate(
        name=name,
        type="process",
        base_job_template=ProcessWorker.get_default_base_job_template(),
        concurrency_limit=limit,
    )
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        client.create_work_pool(pool, overwrite=True)


class Worker:
    """`prefect worker start --pool POOL` in a process (and session) of its own.

    `stop()` sends SIGTERM (one stops a Popen-started worker in < 1 s) and kills what is left,
    flow-run processes included; `kill()` is kill -9 of the worker and its flow runs, as a
    machine that dies would leave them (nothing is reported to the server)."""

    def __init__(
        self,
        api_url: str,
        pool: str,
        home: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.pool = pool
        log = home / "logs" / f"worker-{name or pool}.log"
        cmd = [prefect_exe(), "worker", "start", "--pool", pool, "--type", "process"]
        if name:
            cmd += ["--name", name]
        if limit is not None:
            # The pool's limit is checked when a worker asks for runs, not when a run takes its
            # slot: under load a worker polling every second started 3 runs on a pool limited
            # to 2. A worker limit holds on its own machine, whatever the server's timing.
            cmd += ["--limit", str(limit)]
        self.proc, self._out = _spawn(cmd, prefect_env(api_url, home, env), log, cwd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def flow_run_pids(self) -> set[int]:
        return descendants({self.proc.pid})

    def kill(self) -> set[int]:
        """kill -9 the worker and every process below it; returns the pids killed."""
        tree = self.flow_run_pids()
        for pid in [self.proc.pid, *tree]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()
        # The flow-run processes are in sessions of their own: not children of ours to reap,
        # so wait until they are gone.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_exists(p) for p in tree):
            time.sleep(0.05)
        return {self.proc.pid, *tree}

    def stop(self) -> None:
        try:
            _stop_group(self.proc)
        finally:
            self._out.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
