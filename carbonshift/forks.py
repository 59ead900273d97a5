"""Texts made in forked copies of this process: `make(0)`, ..., `make(count - 1)` joined in
order, each worker making one contiguous share.

`plan --json` on a big queue spends half its time turning scored rows into plan records, job by
job, independently: a fork shares the scored table as it is (no pickling), and each worker
sends back only its text. Only the command line forks, on Linux (fork is the default there and
safe for a process without other Python threads; macOS system libraries are not fork-safe);
flows plan in their own process."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from typing import IO, NoReturn

WORKERS_ENV = "CARBONSHIFT_PLAN_WORKERS"
MAX_WORKERS = 64
# Below this many items per worker a fork (and the copy of the pages it writes) costs more than
# it saves: one plan record takes ~80 us, a fork ~10 ms.
MIN_SHARE = 1000
# A worker's exit code when its file holds its pickled exception instead of its text.
_RAISED = 3


def worker_count(count: int, environ: Mapping[str, str] = os.environ) -> int:
    """How many processes make `count` texts: one per usable CPU, at most CARBONSHIFT_PLAN_WORKERS
    (1 to 64; 1 forks nothing), each with at least MIN_SHARE items; 1 off Linux."""
    text = environ.get(WORKERS_ENV, "").strip()
    if text:
        try:
            cap = int(text)
        except ValueError:
            cap = 0
        if not 1 <= cap <= MAX_WORKERS:
            raise ValueError(
                f"{WORKERS_ENV}={text!r}: give the most processes `plan --json` may use, a whole "
                f"number from 1 to {MAX_WORKERS} (1: no worker processes; unset: one per CPU)"
            )
    else:
        cap = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if sys.platform != "linux":
        return 1
    return max(1, min(cap, count // MIN_SHARE))


def texts_in_forks(make: Callable[[int], str], count: int, workers: int) -> list[str]:
    """The texts `make(0..count-1)` in order, as one joined text per worker. This process makes
    the first share while the forks make the others; `make` must be a pure function of the
    state at the fork. A worker's exception is raised here (with its traceback as a note); a
    worker that dies (killed, out of memory) is an error too, never a missing share. Nothing is
    left behind: on any error or Ctrl-C here the workers still running are killed and reaped."""
    workers = max(1, min(workers, count))
    bounds = [count * w // workers for w in range(workers + 1)]
    if workers == 1:
        return ["".join(map(make, range(count)))]
    # Whatever this process has buffered is written once, by it, not once more by a worker.
    sys.stdout.flush()
    sys.stderr.flush()
    # A share is a worker's (its pid and file) or, where no worker could start (no temporary
    # folder, no process left), this process's own.
    shares: list[tuple[int, IO[bytes]] | range] = []
    running: list[int] = []
    with contextlib.ExitStack() as files:
        try:
            for w in range(1, workers):
                share = range(bounds[w], bounds[w + 1])
                try:
                    sink = files.enter_context(tempfile.TemporaryFile())
                    pid = os.fork()
                except OSError:
                    shares.append(share)
                    continue
                if pid == 0:
                    _work(make, share, sink)
                running.append(pid)
                shares.append((pid, sink))
            texts = ["".join(map(make, range(bounds[0], bounds[1])))]
            for made in shares:
                if isinstance(made, range):
                    texts.append("".join(map(make, made)))
                else:
                    texts.append(_collect(*made))
                    running.remove(made[0])
            return texts
        finally:
            for pid in running:
                _stop(pid)


def _work(make: Callable[[int], str], share: range, sink: IO[bytes]) -> NoReturn:
    """A worker's whole life: its share's text, or its exception, in its file; then gone, without
    running the parent's cleanups (`finally` blocks, atexit) or flushing its buffers."""
    code = 0
    try:
        try:
            sink.write("".join(map(make, share)).encode("utf-8", "surrogatepass"))
        except BaseException as e:  # Ctrl-C included: the parent raises it
            code = _RAISED
            sink.seek(0)
            sink.truncate()
            sink.write(_pickled(e))
        sink.flush()
    except BaseException:
        code = 1
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


def _collect(pid: int, sink: IO[bytes]) -> str:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
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


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
