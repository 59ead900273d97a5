"""The checkpoint store on Google Cloud Storage (`gs://bucket/prefix`): keys live under the prefix.

Credentials come from the default chain (application default credentials, a service account on
the VM); only when STORAGE_EMULATOR_HOST names an emulator are they anonymous. Uploads carry a
CRC32C the service checks; large ones are resumable, in chunks. `create` is a conditional write
(ifGenerationMatch=0: only if no live object has the name), which the checkpoint manager uses for
manifests; the writer lock is a lease on an object, written on the generation that was read."""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import time
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined, import-untyped, unused-ignore]

from carbonshift.checkpoint.lease import Conflict, lease_from_env, take
from carbonshift.checkpoint.port import WriterLock

MiB = 1024 * 1024


def client_for(credentials: Any) -> storage.Client:
    """A client on given credentials (a Prefect GcpCredentials block's, say)."""
    return storage.Client(credentials=credentials, project=getattr(credentials, "project_id", None))


def default_client() -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "carbonshift-emulator"
        return storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return storage.Client()


class GcsStore:
    def __init__(
        self,
        bucket: str,
        root: str = "",
        *,
        client: storage.Client | None = None,
        chunk_size: int = 32 * MiB,
        lease_s: float | None = None,
        renew_every_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`chunk_size`: a large upload is sent in requests of this size (a multiple of
        256 KiB); `lease_s`: how long a writer lock outlives its holder (default:
        lease_from_env)."""
        self.lease_s = lease_from_env() if lease_s is None else lease_s
        if chunk_size <= 0 or chunk_size % (256 * 1024):
            raise ValueError(f"chunk_size: {chunk_size} is not a positive multiple of 256 KiB")
        self.root = root.strip("/")
        self.uri = f"gs://{bucket}/{self.root}".rstrip("/")
        self.client = client or default_client()
        self.bucket = self.client.bucket(bucket)
        self.chunk_size = chunk_size
        self.renew_every_s, self.clock = renew_every_s, clock

    def _full(self, key: str) -> str:
        if key and any(c in ("", ".", "..") for c in key.split("/")):
            raise ValueError(f"key {key!r} leaves the store (empty, '.' or '..' component)")
        return "/".join(p for p in (self.root, key) if p)

    def _blob(self, full: str) -> storage.Blob:
        return self.bucket.blob(full, chunk_size=self.chunk_size)

    def put(self, key: str, data: bytes) -> None:
        self._blob(self._full(key)).upload_from_string(data)

    def create(self, key: str, data: bytes) -> None:
        full = self._full(key)
        try:
            self._blob(full).upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            raise FileExistsError(errno.EEXIST, "an object is already there", full) from None

    def get(self, key: str) -> bytes:
        full = self._full(key)
        try:
            return bytes(self.bucket.blob(full).download_as_bytes())
        except NotFound:
            raise FileNotFoundError(errno.ENOENT, "no such object", full) from None

    def exists(self, key: str) -> bool:
        return bool(self.bucket.blob(self._full(key)).exists())

    def modified_s(self, key: str) -> float | None:
        blob = self.bucket.get_blob(self._full(key))
        if blob is None or blob.updated is None:
            return None
        return float(blob.updated.timestamp())

    def list(self, prefix: str) -> builtins.list[str]:
        """Keys under the folder `prefix` (not `prefix-2/...`), hidden names left out."""
        full = self._full(prefix)
        skip = len(self.root) + 1 if self.root else 0
        names = (
            blob.name[skip:]
            for blob in self.client.list_blobs(self.bucket, prefix=f"{full}/" if full else None)
        )
        return sorted(n for n in names if not n.rpartition("/")[2].startswith("."))

    def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.bucket.blob(self._full(key)).delete()

    def lock(self, key: str, owner: str) -> WriterLock:
        return take(
            _GcsObjects(self.bucket),
            self._full(key),
            owner,
            lease_s=self.lease_s,
            clock=self.clock,
            renew_every_s=self.renew_every_s,
        )

    def sweep(self, prefix: str) -> builtins.list[str]:
        """Nothing to remove: an unfinished upload is never an object on GCS (its session
        expires on its own within a week)."""
        return []


class _GcsObjects:
    """Conditional writes of one object on GCS (lease.Versioned); the version is the generation."""

    def __init__(self, bucket: storage.Bucket) -> None:
        self.bucket = bucket

    def read(self, key: str) -> tuple[bytes, str] | None:
        blob = self.bucket.get_blob(key)
        if blob is None:
            return None
        generation = str(blob.generation)  # a download may reset it from its own headers
        try:
            body = blob.download_as_bytes(if_generation_match=int(generation))
        except (NotFound, PreconditionFailed):
            raise Conflict(key) from None  # it changed since its metadata was read
        return bytes(body), generation

    def create(self, key: str, body: bytes) -> str:
        return self._upload(key, body, 0)

    def replace(self, key: str, body: bytes, version: str) -> str:
        return self._upload(key, body, int(version))

    def _upload(self, key: str, body: bytes, generation: int) -> str:
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_string(body, if_generation_match=generation)
        except PreconditionFailed:
            raise Conflict(key) from None
        return str(blob.generation)

    def remove(self, key: str, version: str) -> None:
        with contextlib.suppress(NotFound, PreconditionFailed):
            self.bucket.blob(key).delete(if_generation_match=int(version))
