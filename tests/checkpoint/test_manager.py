from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.checkpoint.store import open_store


def manager(tmp_path: Path, keep: int = 3) -> CheckpointManager:
    return CheckpointManager(LocalStore(tmp_path), "job-a", keep=keep)


def test_save_then_latest(tmp_path: Path) -> None:
    m = manager(tmp_path)
    uri = m.save(10, {"a.bin": b"alpha", "b.bin": b"beta"}, {"step": 10})
    found = m.latest()
    assert found is not None and found.step == 10 and found.uri == uri
    assert found.parts == {"a.bin": b"alpha", "b.bin": b"beta"}
    manifest = json.loads((tmp_path / "job-a" / "ckpt-000000000010" / "MANIFEST.json").read_text())
    entry = manifest["parts"]["a.bin"]
    assert entry["bytes"] == 5 and len(entry["sha256"]) == 64


def test_keeps_the_last_k(tmp_path: Path) -> None:
    m = manager(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        m.save(step, {"x": str(step).encode()}, {"step": step})
    assert m.steps() == [4, 3]
    assert not (tmp_path / "job-a" / "ckpt-000000000001").exists() or not any(
        (tmp_path / "job-a" / "ckpt-000000000001").iterdir())


class DiesMidWrite(LocalStore):
    """A store whose process 'dies' after writing the first part of a checkpoint."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.armed = False
        self.writes = 0

    def put(self, key: str, data: bytes) -> None:
        if self.armed:
            self.writes += 1
            if self.writes > 1:
                raise KeyboardInterrupt("killed")
        super().put(key, data)


def test_kill_during_write_leaves_previous_loadable(tmp_path: Path) -> None:
    store = DiesMidWrite(tmp_path)
    m = CheckpointManager(store, "job-a")
    m.save(5, {"model": b"five", "optim": b"5"}, {"step": 5})
    store.armed = True
    with pytest.raises(KeyboardInterrupt):
        m.save(6, {"model": b"six", "optim": b"6"}, {"step": 6})
    assert (tmp_path / "job-a" / "ckpt-000000000006" / "model").exists()  # a part, no manifest
    found = CheckpointManager(LocalStore(tmp_path), "job-a").latest()
    assert found is not None and found.step == 5 and found.parts["model"] == b"five"


def test_corrupted_checkpoint_is_skipped_for_the_previous(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    m = manager(tmp_path)
    m.save(1, {"model": b"one"}, {"step": 1})
    m.save(2, {"model": b"two"}, {"step": 2})
    (tmp_path / "job-a" / "ckpt-000000000002" / "model").write_bytes(b"tw0")  # same size
    found = m.latest()
    assert found is not None and found.step == 1
    assert "skipping checkpoint 2" in caplog.text and "sha256" in caplog.text


def test_truncated_part_and_missing_part_are_skipped(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.save(1, {"model": b"one"}, {"step": 1})
    m.save(2, {"model": b"two", "optim": b"x"}, {"step": 2})
    (tmp_path / "job-a" / "ckpt-000000000002" / "optim").unlink()
    m.save(3, {"model": b"three"}, {"step": 3})
    (tmp_path / "job-a" / "ckpt-000000000003" / "model").write_bytes(b"thr")
    assert m.latest().step == 1  # type: ignore[union-attr]


def test_stop_marker(tmp_path: Path) -> None:
    m = manager(tmp_path)
    assert not m.stop_requested()
    m.request_stop("grid dirtier than forecast")
    assert m.stop_requested()
    m.clear_stop()
    assert not m.stop_requested()


def test_open_store_and_escapes(tmp_path: Path) -> None:
    store, prefix = open_store(f"file://{tmp_path}")
    assert isinstance(store, LocalStore) and prefix == ""
    with pytest.raises(ValueError, match="leaves the store"):
        store.put("../outside", b"x")
    with pytest.raises(ValueError, match="checkpoint_store: scheme 'ftp'"):
        open_store("ftp://bucket/key")
