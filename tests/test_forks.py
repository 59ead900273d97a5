"""Texts made in forked workers: the same text as one process makes, in order; a worker's error
or death is the caller's error; no worker outlives the call."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift import forks
from carbonshift.forks import MIN_SHARE, WORKERS_ENV, texts_in_forks, worker_count

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux")


@pytest.fixture(autouse=True)
def _forking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork even if an earlier test left a thread behind: these workers touch no lock."""
    if "real_can_fork" not in request.keywords:
        monkeypatch.setattr(forks, "can_fork", lambda: True)


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

    killed: list[int] = []
    real_kill = os.kill
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "kill", lambda pid, sig: (killed.append(pid), real_kill(pid, sig)))
        with pytest.raises(KeyError, match="job 1") as raised:
            texts_in_forks(make, 2, 2)
    assert killed == []  # reaped before raising: never signalled (its pid may be reused)
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
    cpus = len(os.sched_getaffinity(0))
    assert worker_count(MIN_SHARE * 640, environ={}) == min(cpus, 64)
    assert worker_count(MIN_SHARE * 2 - 1, environ={}) == 1
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: "1"}) == 1
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: " 3 "}) == 3
    assert worker_count(0, environ={WORKERS_ENV: "64"}) == 1
    monkeypatch.setattr(forks, "can_fork", lambda: False)
    assert worker_count(MIN_SHARE * 64, environ={WORKERS_ENV: "8"}) == 1


@pytest.mark.real_can_fork
def test_no_fork_on_another_os_beside_a_thread_or_with_sigchld_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert forks.can_fork()
    with monkeypatch.context() as m:
        m.setattr(sys, "platform", "darwin")
        assert not forks.can_fork()
    with monkeypatch.context() as m:
        m.setattr(threading, "active_count", lambda: 2)
        assert not forks.can_fork()
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert not forks.can_fork()
        # The kernel reaps ignored children: the text is still whole, made here.
        assert "".join(texts_in_forks(word, 30, 3)) == "".join(map(word, range(30)))
    finally:
        signal.signal(signal.SIGCHLD, previous)


@pytest.mark.parametrize("text", ["0", "65", "two", "2.5", "-1", "1_0", "+2", "\u0662"])
def test_a_bad_worker_setting_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{WORKERS_ENV}={text!r}: give")):
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


def test_a_worker_that_cannot_write_its_file_has_its_share_made_here() -> None:
    parent = os.getpid()

    def make(k: int) -> str:
        if os.getpid() != parent:  # a worker whose files may hold 1 kB (like a full /tmp)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        return f"{k}:" + "x" * 100

    assert "".join(texts_in_forks(make, 60, 3)) == "".join(map(make, range(60)))


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from carbonshift import forks
        forks.can_fork = lambda: True
        folder = Path({str(tmp_path)!r})
        parent = os.getpid()
        def make(k):
            if os.getpid() != parent:
                (folder / str(os.getpid())).touch()
            os.read(os.pipe()[0], 1)  # blocks: parent and workers alike
            return ""
        forks.texts_in_forks(make, 3, 3)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        started_by = time.monotonic() + 60
        while len(_pids(tmp_path)) < 2 and time.monotonic() < started_by:
            time.sleep(0.01)
        workers = _pids(tmp_path)
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    gone_by = time.monotonic() + 30
    while any(map(_running, workers)) and time.monotonic() < gone_by:
        time.sleep(0.01)
    assert not any(map(_running, workers))


def _running(pid: int) -> bool:
    """Not gone, nor a zombie waiting for its (new) parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
