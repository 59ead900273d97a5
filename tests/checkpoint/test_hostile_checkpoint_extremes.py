"""Checkpoints at the edges: a step too large for the folder name's 12 digits, and a
`resume_from` that names a folder that does not exist, or one under a file or an unwritable
place. The newest checkpoint is always found; a reader creates nothing and fails in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore, manager_for
from carbonshift.checkpoint.manager import NoCheckpointToResume

GOOD = {"model": b"weights"}


@pytest.mark.parametrize("big", [10**12, 10**15 + 7, 2**63 - 1])
def test_a_step_past_twelve_digits_is_the_latest(tmp_path: Path, big: int) -> None:
    """Steps counted in samples or tokens pass 10^12: that checkpoint must not vanish."""
    with CheckpointManager(LocalStore(tmp_path), "run", keep=2) as m:
        m.save(999_999_999_999, GOOD, {})
        uri = m.save(big, {"model": b"newer"}, {})
        found = m.latest()
        assert found is not None and found.step == big and found.uri == uri
        assert found.parts["model"] == b"newer"
        assert m.steps() == [big, 999_999_999_999]
        m.save(big + 1, GOOD, {})
        assert m.steps() == [big + 1, big]  # pruning sees the big ones too
    assert manager_for(uri).latest().step == big + 1  # type: ignore[union-attr]


def test_resume_from_a_folder_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "here" / "run"
    with pytest.raises(NoCheckpointToResume, match="no checkpoints there"):
        manager_for(str(missing)).resume_point(resume_from=str(missing))
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("where", ["under-a-file", "unwritable"])
def test_resume_from_an_impossible_place_is_one_line(tmp_path: Path, where: str) -> None:
    if where == "under-a-file":
        (tmp_path / "afile").write_text("x")
        uri = str(tmp_path / "afile" / "run" / "ckpt-000000000001")
    else:
        uri = "/proc/carbonshift-nowhere/run"
    with pytest.raises(NoCheckpointToResume, match="resume_from"):
        manager_for(uri).resume_point(resume_from=uri)


def test_a_fresh_start_allowed_in_a_missing_folder_writes_there(tmp_path: Path) -> None:
    target = tmp_path / "new" / "run"
    with manager_for(str(target)) as m:
        assert m.resume_point(resume_from=str(target), allow_fresh_start=True) is None
        m.save(1, GOOD, {})
    assert (target / "ckpt-000000000001" / "MANIFEST.json").is_file()
