"""A local folder behind the object-store port (`port.py`), and `open_store`, which picks the
store a URI names: a folder, S3 (`s3.py`) or GCS (`gcs.py`)."""

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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from carbonshift.checkpoint.port import ObjectStore, WriterBusy, WriterLock
from carbonshift.checkpoint.uri import StoreUri, parse_store_uri

__all__ = ["LocalStore", "ObjectStore", "WriterBusy", "WriterLock", "open_store", "owner_text"]


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

    def held(self) -> bool:
        return self._file is not None

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
        self._commit(key, data, Path.replace)

    def create(self, key: str, data: bytes) -> None:
        # A hard link fails if the name exists, and shows the file whole or not at all.
        self._commit(key, data, os.link)

    def _commit(self, key: str, data: bytes, finish: Callable[[Path, Path], object]) -> None:
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
            finish(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            with self._inflight_lock:
                self._inflight.discard(tmp)

    def _write(self, f: IO[bytes], data: bytes) -> None:
        f.write(data)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def modified_s(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

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


def open_store(
    uri: str,
    *,
    field: str = "checkpoint_store",
    create: bool = True,
    aws_session: Any = None,
    gcp_credentials: Any = None,
) -> tuple[ObjectStore, str]:
    """The store a URI names (a folder or file:// URI, s3://bucket/prefix, gs://bucket/prefix)
    and the key prefix inside it (always "": the URI's path is the store's root). An unknown
    scheme or a bad bucket name is a ValueError naming `field`. `create=False`: a folder is not
    made until the first write (a reader's store). `aws_session` (a boto3 Session) and
    `gcp_credentials` (google credentials) replace the SDKs' default chains, e.g. credentials
    from a Prefect block."""
    where = parse_store_uri(uri, field)
    store = store_at(where, create=create, aws_session=aws_session, gcp_credentials=gcp_credentials)
    return store, ""


def store_at(
    where: StoreUri, *, create: bool = True, aws_session: Any = None, gcp_credentials: Any = None
) -> ObjectStore:
    if where.scheme == "s3":
        from carbonshift.checkpoint.s3 import S3Store  # boto3 is imported only when used

        return S3Store(where.bucket, where.path, region=where.region, session=aws_session)
    if where.scheme == "gs":
        from carbonshift.checkpoint.gcs import GcsStore, client_for

        client = client_for(gcp_credentials) if gcp_credentials is not None else None
        return GcsStore(where.bucket, where.path, client=client)
    return LocalStore(Path(where.path), create=create)
