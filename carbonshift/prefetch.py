"""A job file parsed in a forked process while this one starts up.

`carbonshift plan` spends its first quarter second importing the planner (numpy, pydantic) and
about as long parsing a big job file, and neither needs the other. The command line forks before
those imports, so the fork is small and has no threads: it parses the file with fast_yaml and
hands the values back, pickled. They are used only if the fork parsed the file without error
and the file is unchanged since; otherwise `load_jobs` parses it here, as it always did, so every
error reads the same. Linux only (see carbonshift.forks)."""

from __future__ import annotations

import atexit
import gc
import os
import pickle
import signal
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, NoReturn

from carbonshift import forks

_Key = tuple[int, int, int, int]
_PENDING: dict[str, tuple[int, IO[bytes], _Key]] = {}


def start(path: str | Path) -> None:
    """Parse the job file `path` in a fork; `take(path)` collects it. Nothing if it cannot."""
    name = str(Path(path))
    if not forks.can_fork() or name in _PENDING:
        return
    try:
        found = os.stat(name)
    except OSError:
        return  # load_jobs says what is wrong with it
    if not stat.S_ISREG(found.st_mode):
        return  # a pipe or device reads once: a fork that failed would leave nothing to read here
    key = _key_of(found)
    try:
        # Open until take() or stop_all() closes it, after the fork has written it.
        sink = tempfile.TemporaryFile()  # noqa: SIM115
    except OSError:
        return  # no temporary folder: parsed here
    parent = os.getpid()
    try:
        pid, mask = forks.fork_child()
    except OSError:
        sink.close()
        return
    if pid == 0:
        _parse(name, key, sink, parent, mask)
    if not _PENDING:
        atexit.register(stop_all)
    _PENDING[name] = (pid, sink, key)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def take(path: str | Path) -> tuple[bool, Any]:
    """(True, values) if a fork parsed `path` and the file is unchanged since it began; else
    (False, None): parse it here."""
    entry = _PENDING.pop(str(Path(path)), None)
    if entry is None:
        return False, None
    pid, sink, key = entry
    with sink:
        _, status = os.waitpid(pid, 0)
        try:
            unchanged = _key(str(Path(path))) == key
        except OSError:
            unchanged = False
        if os.waitstatus_to_exitcode(status) != 0 or not unchanged:
            return False, None
        sink.seek(0)
        return True, pickle.load(sink)


def stop_all() -> None:
    """Kill and reap every fork not collected (the command failed or stopped first)."""
    while _PENDING:
        _, (pid, sink, _key_) = _PENDING.popitem()
        forks.stop(pid)
        sink.close()


def _key(name: str) -> _Key:
    return _key_of(os.stat(name))


def _key_of(st: os.stat_result) -> _Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _parse(name: str, key: _Key, sink: IO[bytes], parent: int, mask: set[Any]) -> NoReturn:
    """The fork's whole life: the file's values, pickled, and exit 0; any failure (Ctrl-C
    included) exits 1 and the parent parses the file itself. It never returns into the caller,
    and dies with it."""
    code = 1
    gc.disable()  # it builds one value and exits: the collector's passes would find nothing
    try:
        forks.die_with_parent(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        from carbonshift import fast_yaml

        value = fast_yaml.safe_load(Path(name).read_text(encoding="utf-8"))
        sink.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        sink.flush()
        code = 0 if _key(name) == key else 1
    except BaseException:
        code = 1
    finally:
        os._exit(code)
