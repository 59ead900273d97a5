"""The checkpoint store on S3 (`s3://bucket/prefix`): keys live under the prefix.

Credentials come from boto3's default chain (environment, profile, instance role) or an injected
Session; the region from the URI's `?region=`, else the SDK's default; the endpoint from
AWS_ENDPOINT_URL when set (an emulator). Small objects are one PutObject with their SHA-256;
larger ones a concurrent multipart upload (s3_upload.py). `create` is a conditional write
(If-None-Match: *), which the checkpoint manager uses for manifests."""

from __future__ import annotations

import base64
import builtins
import contextlib
import errno
import hashlib
import time
from collections.abc import Callable
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from carbonshift.checkpoint.lease import Conflict, lease_from_env, take
from carbonshift.checkpoint.port import WriterLock
from carbonshift.checkpoint.s3_upload import MultipartUploader, error_code, is_marker

MiB = 1024 * 1024
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")
_MISSING = ("NoSuchKey", "404", "NotFound")


class S3Store:
    def __init__(
        self,
        bucket: str,
        root: str = "",
        *,
        region: str | None = None,
        session: Any = None,
        part_size: int = 16 * MiB,
        concurrency: int = 8,
        lease_s: float | None = None,
        renew_every_s: float | None = None,
        stale_upload_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`part_size`: multipart above it, in parts of that size, `concurrency` at a time.
        `lease_s`: how long a writer lock outlives its holder (default: lease_from_env).
        `stale_upload_s`: how old an unfinished upload must be before a sweep aborts it."""
        # First: a bad lease setting is said before any client is made.
        self.lease_s = lease_from_env() if lease_s is None else lease_s
        self.renew_every_s = renew_every_s
        self.bucket, self.root = bucket, root.strip("/")
        self.uri = f"s3://{bucket}/{self.root}".rstrip("/")
        self.client = (session or boto3.Session()).client(
            "s3",
            region_name=region,
            config=Config(
                max_pool_connections=max(10, concurrency + 2),
                retries={"mode": "standard", "max_attempts": 5},
                # Every body goes with its SHA-256 in a signed header that S3 checks: signing
                # the body too (botocore does on plain-http endpoints) would hash it again.
                s3={"payload_signing_enabled": False},
            ),
        )
        self.multipart = MultipartUploader(
            self.client, bucket, part_size=part_size, concurrency=concurrency
        )
        self.stale_upload_s, self.clock = stale_upload_s, clock

    def _full(self, key: str) -> str:
        if key and any(c in ("", ".", "..") for c in key.split("/")):
            raise ValueError(f"key {key!r} leaves the store (empty, '.' or '..' component)")
        return "/".join(p for p in (self.root, key) if p)

    def put(self, key: str, data: bytes) -> None:
        self._write(self._full(key), data, if_absent=False)

    def create(self, key: str, data: bytes) -> None:
        self._write(self._full(key), data, if_absent=True)

    def _write(self, full: str, data: bytes, *, if_absent: bool) -> None:
        if len(data) >= self.multipart.part_size:
            self.multipart.upload(full, data, if_absent=if_absent)
            return
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                **({"IfNoneMatch": "*"} if if_absent else {}),
            )
        except ClientError as e:
            if if_absent and error_code(e) in _CONFLICT:
                raise FileExistsError(errno.EEXIST, "an object is already there", full) from None
            raise

    def get(self, key: str) -> bytes:
        full = self._full(key)
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read())
        except ClientError as e:
            if error_code(e) in _MISSING:
                raise FileNotFoundError(errno.ENOENT, "no such object", full) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if error_code(e) in _MISSING:
                return False
            raise
        return True

    def modified_s(self, key: str) -> float | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if error_code(e) in _MISSING:
                return None
            raise
        return float(head["LastModified"].timestamp())

    def list(self, prefix: str) -> builtins.list[str]:
        """Keys under the folder `prefix` (not `prefix-2/...`), hidden names left out."""
        return [k for k in self._keys(prefix) if not k.rpartition("/")[2].startswith(".")]

    def _keys(self, prefix: str) -> builtins.list[str]:
        full = self._full(prefix)
        start = f"{full}/" if full else ""
        skip = len(self.root) + 1 if self.root else 0
        keys: builtins.list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        )
        for page in pages:
            keys.extend(obj["Key"][skip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def lock(self, key: str, owner: str) -> WriterLock:
        return take(
            _S3Objects(self.client, self.bucket),
            self._full(key),
            owner,
            lease_s=self.lease_s,
            clock=self.clock,
            renew_every_s=self.renew_every_s,
        )

    def sweep(self, prefix: str) -> builtins.list[str]:
        """Abort unfinished uploads under `prefix` older than `stale_upload_s` that this process
        is not sending, and drop the markers of uploads that are no more."""
        full = self._full(prefix)
        live, now_s = self.multipart.live(), self.clock()
        removed, still_open = [], set()
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{full}/" if full else ""
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                upload_id, key = upload["UploadId"], upload["Key"]
                age_s = now_s - upload["Initiated"].timestamp()
                if upload_id in live or age_s < self.stale_upload_s:
                    still_open.add(upload_id)
                    continue
                self.multipart.abort(key, upload_id)
                removed.append(self._relative(key))
        for key in self._keys(prefix):
            head, _, name = key.rpartition("/")
            if is_marker(name):
                target = f"{head}/{name[1:-7]}" if head else name[1:-7]
                if self.multipart.marked(self._full(target)) not in still_open:
                    with contextlib.suppress(ClientError):
                        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
                    removed.append(key)
        return removed

    def _relative(self, full: str) -> str:
        return full[len(self.root) + 1 :] if self.root else full


class _S3Objects:
    """Conditional writes of one object on S3 (lease.Versioned); the version is the ETag."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def read(self, key: str) -> tuple[bytes, str] | None:
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if error_code(e) in _MISSING:
                return None
            raise
        return bytes(got["Body"].read()), str(got["ETag"])

    def create(self, key: str, body: bytes) -> str:
        return self._put(key, body, IfNoneMatch="*")

    def replace(self, key: str, body: bytes, version: str) -> str:
        return self._put(key, body, IfMatch=version)

    def _put(self, key: str, body: bytes, **condition: str) -> str:
        try:
            return str(
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)["ETag"]
            )
        except ClientError as e:
            if error_code(e) in (*_CONFLICT, *_MISSING):
                raise Conflict(key) from None
            raise

    def remove(self, key: str, version: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=version)
        except ClientError as e:
            if error_code(e) not in (*_CONFLICT, *_MISSING):
                raise
