"""Texts made in forked copies of this process: `make(0)`, ..., `make(count - 1)` joined in
order, each worker making one contiguous share.

`plan --json` on a big queue spends half its time turning scored rows into plan records, job by
job, independently: a fork shares the scored table as it is (no pickling), and each worker
sends back only its text. Only the command line forks, on Linux (fork is the default there and
safe for a process without other Python threads; macOS system libraries are not fork-safe);
flows plan in their own process."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import re
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import IO, NoReturn

WORKERS_ENV = "CARBONSHIFT_PLAN_WORKERS"
MAX_WORKERS = 64
# Below this many items per worker a fork (and the copy of the pages it writes) costs more than
# it saves: one plan record takes ~80 us, a fork ~10 ms.
MIN_SHARE = 1000
# A worker's exit codes: its file holds its pickled exception instead of its text; it could
# not write its file (full or size-limited temporary folder), so the share is made here.
_RAISED = 3
_UNWRITTEN = 4
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_Mask = set[int | signal.Signals]
_WHOLE_NUMBER = re.compile(r"[0-9]{1,3}")


def worker_cap(environ: Mapping[str, str] = os.environ) -> int:
    """CARBONSHIFT_PLAN_WORKERS (1 to 64), else one per usable CPU, at most 64. A bad value is
    refused here, before any work, naming the variable."""
    text = environ.get(WORKERS_ENV, "").strip()
    if not text:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        return min(cpus, MAX_WORKERS)
    cap = int(text) if _WHOLE_NUMBER.fullmatch(text) else 0
    if not 1 <= cap <= MAX_WORKERS:
        raise ValueError(
            f"{WORKERS_ENV}={text!r}: give the most processes `plan --json` may use, a whole "
            f"number from 1 to {MAX_WORKERS} (1: no worker processes; unset: one per CPU)"
        )
    return cap


def worker_count(count: int, environ: Mapping[str, str] = os.environ) -> int:
    """How many processes make `count` texts: `worker_cap`, each with at least MIN_SHARE items;
    1 where forking is not safe (`can_fork`)."""
    cap = worker_cap(environ)
    return max(1, min(cap, count // MIN_SHARE)) if can_fork() else 1


def can_fork() -> bool:
    """Whether workers can be forked and waited for here: on Linux (macOS system libraries are
    not fork-safe), with no other Python thread (a fork copies only the calling one, and any lock
    another held), and SIGCHLD not ignored (then the kernel reaps the workers itself and their
    exit status is lost)."""
    return (
        sys.platform == "linux"
        and threading.active_count() == 1
        and signal.getsignal(signal.SIGCHLD) != signal.SIG_IGN
    )


def die_with_parent(parent: int) -> None:
    """In a fork: be killed when `parent` dies (killed, out of memory), not outlive it holding its
    stdout open; exit now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def fork_child() -> tuple[int, _Mask]:
    """os.fork with Ctrl-C and SIGTERM held back in this process until the caller has recorded
    the child (they arrive then); returns the pid (0 in the child) and the mask to restore. The
    child must restore it itself, inside its own error handling, so that a Ctrl-C there is its
    own and never runs this process's cleanups."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return os.fork(), mask
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise


def texts_in_forks(make: Callable[[int], str], count: int, workers: int) -> list[str]:
    """The texts `make(0..count-1)` in order, as one joined text per worker. This process makes
    the first share while the forks make the others; `make` must be a pure function of the
    state at the fork. A worker's exception is raised here (with its traceback as a note); a
    worker that dies (killed, out of memory) is an error too, never a missing share; a share no
    worker could start or write is made here. Nothing is left behind: on any error or Ctrl-C here
    the workers still running are killed and reaped, and a worker dies with this process."""
    workers = max(1, min(workers, count))
    bounds = [count * w // workers for w in range(workers + 1)]
    if workers == 1 or not can_fork():
        return ["".join(map(make, range(count)))]
    # Whatever this process has buffered is written once, by it, not once more by a worker.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    parent = os.getpid()
    shares: list[tuple[range, int, IO[bytes]] | range] = []
    running: list[int] = []
    with contextlib.ExitStack() as files:
        try:
            for w in range(1, workers):
                share = range(bounds[w], bounds[w + 1])
                try:
                    sink = files.enter_context(tempfile.TemporaryFile())
                    pid, mask = fork_child()
                except OSError:  # no temporary folder, no process left: made here
                    shares.append(share)
                    continue
                if pid == 0:
                    _work(make, share, sink, parent, mask)
                running.append(pid)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                shares.append((share, pid, sink))
            texts = ["".join(map(make, range(bounds[0], bounds[1])))]
            for made in shares:
                if isinstance(made, range):
                    texts.append("".join(map(make, made)))
                    continue
                share, pid, written = made
                _, status = os.waitpid(pid, 0)
                running.remove(pid)  # reaped: its pid may be another process's from now on
                code = os.waitstatus_to_exitcode(status)
                texts.append(_text(pid, code, written, make, share))
            return texts
        finally:
            for pid in running:
                stop(pid)


def _work(
    make: Callable[[int], str],
    share: range,
    sink: IO[bytes],
    parent: int,
    mask: _Mask,
) -> NoReturn:
    """A worker's whole life: its share's text, or its exception, in its file; then gone, without
    running the parent's cleanups (`finally` blocks, atexit) or flushing its buffers."""
    code = _UNWRITTEN
    try:
        try:
            die_with_parent(parent)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            data, done = "".join(map(make, share)).encode("utf-8", "surrogatepass"), 0
        except BaseException as e:  # Ctrl-C included: the parent raises it
            data, done = _pickled(e), _RAISED
        sink.write(data)
        sink.flush()
        code = done
    except BaseException:
        code = _UNWRITTEN
    finally:
        os._exit(code)


def _pickled(error: BaseException) -> bytes:
    error.add_note("in a worker process:\n" + "".join(traceback.format_exception(error)).rstrip())
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
        return data
    except Exception:  # an exception that does not round-trip is raised as its text
        return pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))


def _text(pid: int, code: int, sink: IO[bytes], make: Callable[[int], str], share: range) -> str:
    """A reaped worker's share: its text, its exception raised, or made here if it could not
    write its file."""
    if code == _UNWRITTEN:
        return "".join(map(make, share))
    sink.seek(0)
    data = sink.read()
    if code == 0:
        return data.decode("utf-8", "surrogatepass")
    if code == _RAISED:
        raise pickle.loads(data)
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    raise ChildProcessError(
        f"a worker process ({pid}) {how} before its share was made, so nothing was written: "
        f"run again, or with {WORKERS_ENV}=1 to make everything in one process"
    )


def stop(pid: int) -> None:
    """Kill a fork not yet reaped, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
