from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonshift.catalog import Catalog, default_catalog
from carbonshift.series import IntensitySeries, Signal

pytest_plugins = ["tests.aws_policy"]

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def make_series(
    values: Sequence[float],
    *,
    start: datetime = T0,
    step_s: int = 300,
    zone: str = "A",
    signal: Signal = Signal.LCA,
) -> IntensitySeries:
    return IntensitySeries(
        int(start.timestamp()), step_s, list(values), signal, f"test:{zone}", zone
    )  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


_SAVED_ENV: dict[str, str | None] = {}
_PREFECT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline: no telemetry, no "database is locked"
    "PREFECT_API_URL": "",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
}


def pytest_configure(config: pytest.Config) -> None:
    """Prefect reads PREFECT_HOME at import: give the test session its own, so the task cache
    and results of one run never leak into another."""
    home = tempfile.mkdtemp(prefix="carbonshift-prefect-")
    for key, value in {**_PREFECT_ENV, "PREFECT_HOME": home}.items():
        _SAVED_ENV[key] = os.environ.get(key)
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.get("PREFECT_HOME", "")
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if home.startswith(tempfile.gettempdir()):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the session, flow heartbeats off."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120), temporary_settings(
        updates={"flows.heartbeat_frequency": None}
    ):
        yield


def _children(pid: int) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == pid and state != "Z":
            found.append(f"{proc.name}: {cmd}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No test may leave a process behind (servers, workers, training commands)."""
    left = _children(os.getpid())
    if left:
        print("\nprocesses left behind by the tests:\n  " + "\n  ".join(left))
        session.exitstatus = 1


# Emulated clouds: one in-process server each per session, emptied before each test that uses
# it. Test code reaches them through the real SDKs (boto3 honours AWS_ENDPOINT_URL,
# google-cloud-storage STORAGE_EMULATOR_HOST).
@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty moto server as AWS for boto3, with fake credentials; returns its URL."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10
    ).close()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_server


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    host, port = server._api._httpd.server_address
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()  # its thread is not a daemon: a forgotten stop hangs the session


@pytest.fixture
def gcs(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty GCS emulator for google-cloud-storage; returns its URL."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{gcs_emulator}/wipe", method="GET"), timeout=10
    ).close()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "carbonshift-test")
    return gcs_emulator
