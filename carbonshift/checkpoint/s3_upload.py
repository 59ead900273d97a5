"""S3 multipart uploads: parts of `part_size` bytes, several at a time, each with its SHA-256
(S3 checks each part on arrival, and at completion that the parts are the ones named).

Each part's SHA-256 is computed once, by one hashing thread running ahead of the uploads (a part
waits only for its own digest), and serves three ends: the part's checksum header, the list of
checksums at completion, and the marker's name for the bytes. Part bodies are views of the
caller's bytes, not copies.

An upload that fails on an error S3 answered is aborted. One cut short by the network or by the
process dying stays in place, with a marker object (`.<name>.upload`, hidden from listings)
naming its upload id, part size, size and `parts_sha256`: the SHA-256 of the parts' SHA-256s,
which names the bytes as surely as their own SHA-256 (S3's checksum of the completed object is
the same value). The next upload of the same bytes to the same key lists the parts already there
and sends only the missing ones. Uploads nobody resumes are aborted by the store's sweep.

The marker holds what names the bytes because S3 shows no metadata of an upload in progress. It
is written once every part is hashed, while the first parts are on their way; an upload killed
before that is not resumed, only swept. The whole object's SHA-256, which the checkpoint manifest
holds, is the manager's to compute: the store needs no second pass over the bytes."""

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
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")


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


def parts_sha256(digests: list[bytes]) -> str:
    """S3's SHA-256 checksum of a multipart object (base64, without the `-<parts>` suffix): the
    SHA-256 of its parts' SHA-256 digests, in order."""
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()


class PartBody:
    """A part's bytes as a read-only, seekable file over a view of the caller's buffer: botocore
    sends it in blocks and rewinds it for a retry, and no copy of the part is made."""

    def __init__(self, view: memoryview) -> None:
        self._view, self._pos = view, 0

    def __len__(self) -> int:
        return len(self._view)

    def read(self, size: int | None = -1) -> bytes:
        end = (
            len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        )
        block = bytes(self._view[self._pos : end])
        self._pos = max(self._pos, end)
        return block

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._view))[whence]
        if base + offset < 0:
            raise ValueError(f"seek to {base + offset}: before the start of the part")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


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
        view = memoryview(data).cast("B")
        count = max(1, -(-len(view) // self.part_size))
        if count > MAX_PARTS:
            raise ValueError(
                f"{key}: {len(view)} bytes need more than {MAX_PARTS} parts of {self.part_size}"
            )
        chunks = [view[i * self.part_size : (i + 1) * self.part_size] for i in range(count)]
        hasher = ThreadPoolExecutor(1, thread_name_prefix="s3-sha256")
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part")
        try:
            # One thread hashes the parts in order, ahead of the uploads, which wait only for
            # their own part's digest.
            digests = [hasher.submit(_sha256, chunk) for chunk in chunks]
            upload_id, sent = self._resumable(key, len(view), digests)
            mark = upload_id is None
            if upload_id is None:
                upload_id = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
                )["UploadId"]
            self._finish(key, upload_id, chunks, digests, pool, sent, if_absent, mark)
        finally:
            # A failure sends no further parts.
            pool.shutdown(wait=True, cancel_futures=True)
            hasher.shutdown(wait=True, cancel_futures=True)

    def _finish(
        self,
        key: str,
        upload_id: str,
        chunks: list[memoryview],
        digests: list[Future[bytes]],
        pool: ThreadPoolExecutor,
        sent: dict[int, _Sent],
        if_absent: bool,
        mark: bool,
    ) -> None:
        with self._live_lock:
            self._live.add(upload_id)
        try:
            futures = [
                pool.submit(self._part, key, upload_id, n, chunk, digest, sent.get(n))
                for n, (chunk, digest) in enumerate(zip(chunks, digests, strict=True), start=1)
            ]
            if mark:
                doc = {
                    "upload_id": upload_id,
                    "part_size": self.part_size,
                    "bytes": sum(len(c) for c in chunks),
                    "parts_sha256": parts_sha256([d.result() for d in digests]),
                }
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
            if if_absent and error_code(e) in _CONFLICT:
                raise FileExistsError(17, "an object is already there", key) from None
            raise
        finally:
            with self._live_lock:
                self._live.discard(upload_id)
        self._delete(marker_key(key))

    def _part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunk: memoryview,
        digest: Future[bytes],
        have: _Sent | None,
    ) -> dict[str, Any]:
        sha = base64.b64encode(digest.result()).decode()
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
                Body=PartBody(chunk),
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

    def _resumable(
        self, key: str, size: int, digests: list[Future[bytes]]
    ) -> tuple[str | None, dict[int, _Sent]]:
        """The upload of these bytes to `key` in progress (its marker says so), and its parts.
        Only when a marker is there does this wait for the parts' digests."""
        doc = self._marker(marker_key(key))
        if not doc or not isinstance(doc.get("upload_id"), str):
            return None, {}
        upload_id = str(doc["upload_id"])
        same = (
            doc.get("part_size") == self.part_size
            and doc.get("bytes") == size
            and doc.get("parts_sha256") == parts_sha256([d.result() for d in digests])
        )
        if not same:  # of other bytes (or a marker of an older format): nobody will finish it
            self.abort(key, upload_id)
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


def _sha256(chunk: memoryview) -> bytes:
    return hashlib.sha256(chunk).digest()
