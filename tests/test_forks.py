"""Texts made in forked workers: the same text as one process makes, in order; a worker's error
or death is the caller's error; no worker outlives the call."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.forks import MIN_SHARE, WORKERS_ENV, texts_in_forks, worker_count

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")


def word(k: int) -> str:
    return f"{k}:{'é' * (k % 3)}\udcff," if k % 7 == 0 else f"{k},"


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 40), workers=st.integers(1, 6))
def test_the_text_is_one_process_text_in_order(count: int, workers: int) -> None:
    texts = texts_in_forks(word, count, workers)
    assert "".join(texts) == "".join(map(word, range(count)))
    assert len(texts) == max(1, min(workers, count))


def _pids(folder: Path) -> list[int]:
    return [int(p.name) for p in folder.iterdir()]


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not a child any more: it was waited for
    return False


def test_a_workers_exception_is_raised_here_with_its_traceback(tmp_path: Path) -> None:
    def make(k: int) -> str:
        if k == 0:
            return "parent,"
        (tmp_path / str(os.getpid())).touch()
        raise KeyError(f"job {k}")

    with pytest.raises(KeyError, match="job 1") as raised:
        texts_in_forks(make, 2, 2)
    notes = "".join(getattr(raised.value, "__notes__", []))
    assert "in a worker process" in notes and "make" in notes
    (worker,) = _pids(tmp_path)
    assert worker != os.getpid() and _reaped(worker)


def test_an_exception_that_does_not_pickle_is_raised_as_its_text() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:  # pickles, but cannot be rebuilt from args
            super().__init__(f"odd {a} {b}")

    def make(k: int) -> str:
        if k:
            raise Odd(1, 2)
        return ""

    with pytest.raises(RuntimeError, match="Odd: odd 1 2"):
        texts_in_forks(make, 2, 2)


def test_a_killed_worker_is_an_error_naming_the_way_out() -> None:
    def make(k: int) -> str:
        if k == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return f"{k},"

    with pytest.raises(ChildProcessError, match=f"killed by signal 9.*{WORKERS_ENV}=1"):
        texts_in_forks(make, 4, 2)


def test_an_error_here_kills_and_reaps_the_workers_still_running(tmp_path: Path) -> None:
    blocked, _never_written = os.pipe()

    def make(k: int) -> str:
        if k == 0:
            started_by = time.monotonic() + 60
            while len(_pids(tmp_path)) < 2 and time.monotonic() < started_by:
                os.sched_yield()  # until both workers are in their share
            raise ValueError("the parent's share failed")
        (tmp_path / str(os.getpid())).touch(exist_ok=True)
        os.read(blocked, 1)  # blocks until killed
        return ""

    with pytest.raises(ValueError, match="parent's share"):
        texts_in_forks(make, 3, 3)
    workers = _pids(tmp_path)
    assert len(workers) == 2 and all(_reaped(pid) for pid in workers)


def test_worker_count_is_one_per_cpu_with_a_share_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    cpus = len(os.sched_getaffinity(0))
    assert worker_count(MIN_SHARE * 64, environ={}) == min(cpus, 64)
    assert worker_count(MIN_SHARE * 2 - 1, environ={}) == 1
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: "1"}) == 1
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: " 3 "}) == 3
    assert worker_count(0, environ={WORKERS_ENV: "64"}) == 1
    monkeypatch.setattr(sys, "platform", "darwin")
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: "8"}) == 1


@pytest.mark.parametrize("text", ["0", "65", "two", "2.5", "-1"])
def test_a_bad_worker_setting_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=f"{WORKERS_ENV}='{text}': .* from 1 to 64"):
        worker_count(10, environ={WORKERS_ENV: text})


def test_shares_no_worker_could_start_are_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    forks_started = []
    real_fork = os.fork

    def fork_once() -> int:
        if forks_started:
            raise BlockingIOError("fork: Resource temporarily unavailable")
        forks_started.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork_once)
    assert "".join(texts_in_forks(word, 30, 4)) == "".join(map(word, range(30)))
    assert forks_started == [1]


def test_no_temporary_file_makes_every_share_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_file(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked without a file"))
    assert "".join(texts_in_forks(word, 30, 3)) == "".join(map(word, range(30)))
