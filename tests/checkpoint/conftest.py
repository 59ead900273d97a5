"""Checkpoint stores to run the same tests on: a folder, S3 (moto's server) and GCS (the emulator),
reached through the real SDKs. Each place can make a second store on the same location (another
writer, as another process would), and has a clock the tests move (writer-lock leases)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore, ObjectStore

BUCKET = "carbonshift-ckpt"
MiB = 1024 * 1024
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now_s = T0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Place:
    kind: str
    clock: Clock
    make: Callable[..., ObjectStore]

    def manager(self, run: str = "run", keep: int = 3, **store: Any) -> CheckpointManager:
        return CheckpointManager(self.make(**store), run, keep=keep)


@pytest.fixture
def local_place(tmp_path: Path) -> Place:
    return Place("local", Clock(), lambda **_: LocalStore(tmp_path))


@pytest.fixture
def s3_place(aws: str) -> Place:
    import boto3

    from carbonshift.checkpoint.s3 import S3Store

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    clock = Clock()

    def make(**options: Any) -> S3Store:
        # Small parts (S3's minimum) so that a few MiB make a multipart upload; no background
        # renewal of leases: the tests move the clock and renew by hand.
        settings: dict[str, Any] = {
            "part_size": 5 * MiB,
            "concurrency": 3,
            "renew_every_s": 0,
            "clock": clock,
            **options,
        }
        return S3Store(BUCKET, "jobs", **settings)

    return Place("s3", clock, make)


@pytest.fixture
def gcs_place(gcs: str) -> Place:
    from carbonshift.checkpoint.gcs import GcsStore, default_client

    default_client().create_bucket(BUCKET)
    clock = Clock()

    def make(**options: Any) -> GcsStore:
        settings: dict[str, Any] = {"renew_every_s": 0, "clock": clock, **options}
        return GcsStore(BUCKET, "jobs", **settings)

    return Place("gcs", clock, make)


@pytest.fixture(params=["local", "s3", "gcs"])
def place(request: pytest.FixtureRequest) -> Place:
    found: Place = request.getfixturevalue(f"{request.param}_place")
    return found


@pytest.fixture(params=["s3", "gcs"])
def cloud_place(request: pytest.FixtureRequest) -> Place:
    found: Place = request.getfixturevalue(f"{request.param}_place")
    return found


class DiesAfter:
    """A store whose writer 'dies' (KeyboardInterrupt, as a kill) at its `after`+1-th put."""

    def __init__(self, store: ObjectStore, after: int) -> None:
        self._store, self.after, self.puts = store, after, 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        if self.puts > self.after:
            raise KeyboardInterrupt("killed")
        self._store.put(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


GCS_IGNORES_GENERATION_MATCH = (
    "gcp-storage-emulator ignores ifGenerationMatch (real GCS answers 412 Precondition Failed); "
    "test_gcs_store.py checks that the condition is sent"
)
