"""The object-store port: a local folder here; S3 and GCS plug in behind the same interface."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import IO, Protocol, runtime_checkable


class WriterBusy(Exception):
    """Another writer holds the lock: the message says who."""


@runtime_checkable
class WriterLock(Protocol):
    def release(self) -> None: ...


@runtime_checkable
class ObjectStore(Protocol):
    """Keys are `/`-separated paths under the store's root."""

    uri: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def lock(self, key: str, owner: str) -> WriterLock:
        """An exclusive lock held until released or until the holder dies; raises WriterBusy
        (naming the holder's `owner` text) while another holds it."""
        ...

    def sweep(self, prefix: str) -> builtins.list[str]:
        """Remove what interrupted writes left under `prefix` (not live writers' writes);
        returns what was removed."""
        ...


# `.<name>.<pid>.<random>.tmp`: unique per write, so threads and processes never share one.
_TMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{32}\.tmp$")
_MAX_CACHED_FOLDERS = 256


class _FileLock:
    def __init__(self, file: IO[str]) -> None:
        self._file: IO[str] | None = file

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.truncate(0)
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __del__(self) -> None:  # a lock nobody holds any more is released, as on exit
        self.release()


class LocalStore:
    """A folder. Each put is atomic (write to a temporary name unique to the write, then
    rename); a failed put removes its temporary file."""

    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        """`create=False`: the folder is made by the first write, not here (a reader's store)."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self._root = self.root.resolve()
        self.uri = f"file://{self._root}"
        self._inflight: set[Path] = set()
        self._inflight_lock = threading.Lock()
        # Resolving a key walks every component of its path (an lstat each, in Python): a save
        # touches ten keys in one folder, so folders are resolved once and kept until this store
        # removes a folder. A folder swapped for a symlink by another process after that is not
        # seen (as it was not between a resolve and its use before).
        self._folders: dict[str, Path] = {}

    def _path(self, key: str) -> Path:
        head, _, name = key.rpartition("/")
        if name in ("", ".", ".."):
            return self._resolve(key)
        folder = self._folders.get(head)
        if folder is None:
            folder = self._resolve(head)
            if len(self._folders) >= _MAX_CACHED_FOLDERS:
                self._folders.clear()
            self._folders[head] = folder
        path = folder / name
        if path.is_symlink():  # it may point anywhere: resolved and checked like the rest
            return self._resolve(key)
        return path

    def _resolve(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if self._root not in path.parents and path != self._root:
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        with self._inflight_lock:
            self._inflight.add(tmp)
        try:
            try:
                f = tmp.open("wb")
            except FileNotFoundError:  # an emptied folder was removed meanwhile
                path.parent.mkdir(parents=True, exist_ok=True)
                f = tmp.open("wb")
            with f:
                self._write(f, data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.discard(tmp)

    def _write(self, f: IO[bytes], data: bytes) -> None:
        f.write(data)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._resolve(prefix)
        if not base.exists():
            return []
        root = self._root
        return sorted(
            str(p.relative_to(root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._remove_empty_parents(path)

    def _remove_empty_parents(self, path: Path) -> None:
        """Empty folders go with their last file, up to the store's root."""
        root = self._root
        folder = path.parent
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            self._folders.clear()  # the cached ones may be gone, or soon be something else
            folder = folder.parent

    def lock(self, key: str, owner: str) -> WriterLock:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            file.seek(0)
            holder = file.read().strip() or "another writer"
            file.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise WriterBusy(holder) from None
            raise
        file.seek(0)
        file.truncate(0)
        file.write(owner)
        file.flush()
        return _FileLock(file)

    def sweep(self, prefix: str) -> builtins.list[str]:
        base = self._resolve(prefix)
        if not base.exists():
            return []
        with self._inflight_lock:
            mine = set(self._inflight)
        removed: builtins.list[str] = []
        for path in sorted(base.rglob(".*.tmp")):
            match = _TMP.match(path.name)
            if match is None or path in mine:
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and _pid_alive(pid):
                continue  # another live process is writing it
            path.unlink(missing_ok=True)
            self._remove_empty_parents(path)
            removed.append(str(path.relative_to(self._root)))
        return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_text() -> str:
    """Who is writing: host, pid and thread, for a second writer's error message."""
    return f"pid {os.getpid()} on {socket.gethostname()} (thread {threading.get_ident()})"


def open_store(uri: str) -> tuple[ObjectStore, str]:
    """A store and the key prefix inside it, from `file:///path/prefix` or a plain path."""
    path = uri.removeprefix("file://")
    if "://" in path:
        raise ValueError(
            f"{uri}: only local checkpoint stores (file:// or a path) are supported in this release"
        )
    return LocalStore(Path(path)), ""
