"""S3 multipart uploads: parts of `part_size` bytes, several at a time, each with its SHA-256
(S3 checks each part on arrival, and at completion that the parts are the ones named).

An upload that fails on an error S3 answered is aborted. One cut short by the network or by the
process dying stays in place, with a marker object (`.<name>.upload`, hidden from listings)
naming its upload id and the SHA-256 of the whole object: the next upload of the same bytes to
the same key lists the parts already there and sends only the missing ones. Uploads nobody
resumes are aborted by the store's sweep.

The whole object's SHA-256 lives in the marker, not in the object's metadata: metadata is set
when an upload starts, and S3 shows none of it for an upload in progress, so it could not say
which bytes an unfinished upload holds; waiting for the hash before starting would delay every
upload by it. The completed object carries S3's checksum of its parts' SHA-256s, and the
checkpoint manifest the whole object's."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for all parts but the last
MAX_PARTS = 10_000


@dataclass(frozen=True)
class _Sent:
    size: int
    etag: str
    sha256: str | None  # base64; S3 lists it, some emulators do not


def marker_key(key: str) -> str:
    head, _, name = key.rpartition("/")
    return f"{head}/.{name}.upload" if head else f".{name}.upload"


def is_marker(name: str) -> bool:
    return name.startswith(".") and name.endswith(".upload")


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class MultipartUploader:
    def __init__(self, client: Any, bucket: str, *, part_size: int, concurrency: int) -> None:
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"part_size: {part_size} bytes; S3 needs at least {MIN_PART_BYTES}")
        if concurrency < 1:
            raise ValueError("concurrency: at least 1")
        self.client, self.bucket = client, bucket
        self.part_size, self.concurrency = part_size, concurrency
        # Called with each part's number before it is sent: where a test makes an upload fail.
        self.before_part: Callable[[int], None] | None = None
        self._live: set[str] = set()
        self._live_lock = threading.Lock()

    def live(self) -> set[str]:
        """Upload ids this process is sending now (a sweep leaves them alone)."""
        with self._live_lock:
            return set(self._live)

    def upload(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """`if_absent`: complete only if no object is at `key` (FileExistsError otherwise)."""
        if -(-len(data) // self.part_size) > MAX_PARTS:
            raise ValueError(
                f"{key}: {len(data)} bytes need more than {MAX_PARTS} parts of {self.part_size}"
            )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part")
        try:
            # The whole object's SHA-256 names the upload in its marker, for a later put of the
            # same bytes to resume; it is computed alongside the parts, not before them (an
            # upload killed before its marker is written is not resumed, only swept).
            whole = pool.submit(_hex_sha256, data)
            upload_id, sent = self._resumable(key, whole)
            if upload_id is None:
                upload_id = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
                )["UploadId"]
                self._finish(key, upload_id, data, pool, {}, if_absent, mark=whole)
            else:
                self._finish(key, upload_id, data, pool, sent, if_absent, mark=None)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a failure sends no further parts

    def _finish(
        self,
        key: str,
        upload_id: str,
        data: bytes,
        pool: ThreadPoolExecutor,
        sent: dict[int, _Sent],
        if_absent: bool,
        mark: Future[str] | None,
    ) -> None:
        with self._live_lock:
            self._live.add(upload_id)
        try:
            futures = [
                pool.submit(self._part, key, upload_id, data, n, sent.get(n))
                for n in range(1, max(1, -(-len(data) // self.part_size)) + 1)
            ]
            if mark is not None:
                doc = {"upload_id": upload_id, "sha256": mark.result(), "part_size": self.part_size}
                self.client.put_object(
                    Bucket=self.bucket, Key=marker_key(key), Body=json.dumps(doc).encode()
                )
            parts = [f.result() for f in futures]
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if if_absent else {}),
            )
        except ClientError as e:
            self.abort(key, upload_id)
            if if_absent and error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(17, "an object is already there", key) from None
            raise
        finally:
            with self._live_lock:
                self._live.discard(upload_id)
        self._delete(marker_key(key))

    def _part(
        self, key: str, upload_id: str, data: bytes, number: int, have: _Sent | None
    ) -> dict[str, Any]:
        start = (number - 1) * self.part_size
        chunk = memoryview(data)[start : start + self.part_size]
        sha = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        if have and have.size == len(chunk) and have.sha256 in (None, sha):
            etag = have.etag  # S3 checks at completion that its checksum is this one
        else:
            if self.before_part is not None:
                self.before_part(number)
            etag = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data[start : start + self.part_size],
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha,
            )["ETag"]
        return {"PartNumber": number, "ETag": etag, "ChecksumSHA256": sha}

    def abort(self, key: str, upload_id: str) -> None:
        """Abort an upload (gone already: nothing) and remove its marker if it names it."""
        with contextlib.suppress(ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        if self.marked(key) in (upload_id, ""):
            self._delete(marker_key(key))

    def marked(self, key: str) -> str | None:
        """The upload id the marker of `key` names ("" unreadable; None if no marker)."""
        doc = self._marker(marker_key(key))
        return None if doc is None else str(doc.get("upload_id", ""))

    def _resumable(self, key: str, whole: Future[str]) -> tuple[str | None, dict[int, _Sent]]:
        """The upload of these bytes to `key` in progress (its marker says so), and its parts."""
        doc = self._marker(marker_key(key))
        if not doc or not isinstance(doc.get("upload_id"), str):
            return None, {}
        upload_id = str(doc["upload_id"])
        if doc.get("sha256") != whole.result() or doc.get("part_size") != self.part_size:
            self.abort(key, upload_id)  # of other bytes: nobody will finish it
            return None, {}
        sent = self._sent(key, upload_id)
        return (upload_id, sent) if sent is not None else (None, {})

    def _sent(self, key: str, upload_id: str) -> dict[int, _Sent] | None:
        """The parts an upload has; None once it is gone (completed or aborted meanwhile)."""
        sent: dict[int, _Sent] = {}
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                for p in page.get("Parts", []):
                    sent[p["PartNumber"]] = _Sent(p["Size"], p["ETag"], p.get("ChecksumSHA256"))
        except ClientError as e:
            if error_code(e) != "NoSuchUpload":
                raise
            return None
        return sent

    def _marker(self, marker: str) -> dict[str, Any] | None:
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=marker)["Body"].read()
        except ClientError as e:
            if error_code(e) in ("NoSuchKey", "404"):
                return None
            raise
        with contextlib.suppress(ValueError):
            doc = json.loads(raw)
            if isinstance(doc, dict):
                return doc
        return {}

    def _delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _hex_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
