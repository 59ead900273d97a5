"""A resumed run whose predecessor died holding the writer lock waits for the lease to end
instead of failing; a live second writer still gets WriterConflict once the wait is over."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore, takeover_wait_s
from carbonshift.checkpoint.lease import LEASE_ENV, lease_from_env
from carbonshift.checkpoint.manager import WriterConflict
from carbonshift.checkpoint.port import WriterBusy
from carbonshift.checkpoint.store import WriterLock


class BusyFor(LocalStore):
    """A store whose lock is held by someone else for `busy_s` of the test's clock."""

    def __init__(self, root: Path, clock: list[float], busy_s: float) -> None:
        super().__init__(root)
        self.clock, self.busy_s, self.tries = clock, busy_s, 0

    def lock(self, key: str, owner: str) -> WriterLock:
        self.tries += 1
        if self.clock[0] < self.busy_s:
            raise WriterBusy(f"pid 1 on a dead vm (lease until t={self.busy_s:g})")
        return super().lock(key, owner)


def manager(tmp_path: Path, busy_s: float, wait_s: float) -> tuple[CheckpointManager, BusyFor]:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    store = BusyFor(tmp_path, now, busy_s)
    return CheckpointManager(store, "run", writer_wait_s=wait_s, clock=lambda: now[0],
                             sleep=sleep), store


@pytest.mark.parametrize(("busy_s", "wait_s"), [(0.0, 0.0), (3.5, 10.0), (59.9, 65.0)])
def test_a_lock_that_frees_within_the_wait_is_taken(
        tmp_path: Path, busy_s: float, wait_s: float) -> None:
    m, store = manager(tmp_path, busy_s, wait_s)
    assert m.save(1, {"w": b"x"}, {}).endswith("ckpt-000000000001")
    assert store.clock[0] >= busy_s and store.clock[0] <= busy_s + 1.0  # no longer than needed


@pytest.mark.parametrize(("busy_s", "wait_s"), [(1.0, 0.0), (30.0, 29.0)])
def test_a_lock_held_past_the_wait_is_a_conflict_and_nothing_is_written(
        tmp_path: Path, busy_s: float, wait_s: float) -> None:
    m, store = manager(tmp_path, busy_s, wait_s)
    with pytest.raises(WriterConflict, match="dead vm"):
        m.save(1, {"w": b"x"}, {})
    assert m.latest() is None and store.clock[0] == pytest.approx(wait_s)


def test_the_takeover_wait_is_the_stores_lease(tmp_path: Path) -> None:
    assert takeover_wait_s(LocalStore(tmp_path)) == 0.0  # flock: a dead holder frees it at once

    class Leased(LocalStore):
        lease_s = 60.0

    assert takeover_wait_s(Leased(tmp_path)) == 65.0
    with pytest.raises(ValueError, match="writer_wait_s"):
        CheckpointManager(LocalStore(tmp_path), writer_wait_s=-1)


class Counting(LocalStore):
    """Counts the bytes read: an observer's look must not download the parts."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read_bytes = 0

    def get(self, key: str) -> bytes:
        data = super().get(key)
        self.read_bytes += len(data)
        return data


def test_the_latest_committed_checkpoint_is_found_from_the_manifests_alone(
        tmp_path: Path) -> None:
    writer = CheckpointManager(LocalStore(tmp_path), "run", keep=5)
    writer.save(1, {"model.pt": b"a" * 1_000_000}, {"step": 1, "total_steps": 9})
    writer.save(2, {"model.pt": b"b" * 1_000_000}, {"step": 2, "total_steps": 9})
    (tmp_path / "run" / "ckpt-000000000002" / "model.pt").unlink()  # a lost part: skipped
    writer.close()
    store = Counting(tmp_path)
    found = CheckpointManager(store, "run").latest_committed()
    assert found is not None and found[0] == 1 and found[2]["total_steps"] == 9
    assert found[1].endswith("run/ckpt-000000000001")
    assert store.read_bytes < 10_000  # manifests, not the 1 MB parts
    assert CheckpointManager(LocalStore(tmp_path / "empty"), "run").latest_committed() is None


@pytest.mark.parametrize(("setting", "lease_s"), [(None, 60.0), ("", 60.0), ("15", 15.0),
                                                  (" 600.5 ", 600.5), ("10", 10.0)])
def test_the_lease_comes_from_the_environment(setting: str | None, lease_s: float) -> None:
    environ = {} if setting is None else {LEASE_ENV: setting}
    assert lease_from_env(environ) == lease_s


@pytest.mark.parametrize("setting", ["9.9", "0", "-5", "3601", "nan", "inf", "1m", "sixty"])
def test_a_bad_lease_is_refused_naming_the_variable_and_the_range(setting: str) -> None:
    with pytest.raises(ValueError, match=rf"^{LEASE_ENV}='.*': .* from 10 to 3600 \(unset: 60\)"):
        lease_from_env({LEASE_ENV: setting})


def test_object_stores_wait_for_the_lease_of_the_environment(
        aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from carbonshift.checkpoint.store import open_store

    monkeypatch.setenv(LEASE_ENV, "20")
    store, _ = open_store("s3://any-bucket/jobs")
    assert (store.lease_s, takeover_wait_s(store)) == (20.0, 25.0)  # type: ignore[attr-defined]
    monkeypatch.setenv(LEASE_ENV, "5")
    with pytest.raises(ValueError, match=LEASE_ENV):
        open_store("s3://any-bucket/jobs")
