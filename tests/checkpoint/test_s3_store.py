"""S3: multipart uploads with checksums, resumed after a failure, aborted on S3's errors, swept
when abandoned; conditional writes; the region. Through boto3 against moto's server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.checkpoint.s3 import S3Store
from tests.checkpoint.conftest import BUCKET, MiB, Place

pytestmark = pytest.mark.integration

PART = 5 * MiB
DATA = os.urandom(PART * 6 + 1234)  # 7 parts


def composite_sha256(data: bytes, part_size: int) -> str:
    """S3's checksum of a multipart object: the SHA-256 of its parts' SHA-256s."""
    digests = b"".join(
        hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    )
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def count_uploaded_parts(store: S3Store) -> list[int]:
    """The part numbers this store's client sends (a botocore event hook, no mock)."""
    sent: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["PartNumber"])

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", record)
    return sent


def fail_after(parts: int, error: BaseException) -> Any:
    def hook(number: int) -> None:
        if number > parts:
            raise error

    return hook


def uploads(prefix: str = "") -> list[dict[str, Any]]:
    found = boto3.client("s3").list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return list(found.get("Uploads", []))


def test_small_and_large_objects_carry_their_sha256(s3_place: Place) -> None:
    store = s3_place.make()
    assert isinstance(store, S3Store)
    sent = count_uploaded_parts(store)
    store.put("run/small", b"tiny")
    store.put("run/large", DATA)
    assert sorted(sent) == [1, 2, 3, 4, 5, 6, 7]
    assert store.get("run/large") == DATA and store.get("run/small") == b"tiny"
    s3 = boto3.client("s3")
    small = s3.head_object(Bucket=BUCKET, Key="jobs/run/small", ChecksumMode="ENABLED")
    assert small["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"tiny").digest()).decode()
    large = s3.head_object(Bucket=BUCKET, Key="jobs/run/large", ChecksumMode="ENABLED")
    assert large["ChecksumSHA256"].split("-")[0] == composite_sha256(DATA, PART)
    assert uploads() == [] and store.list("run") == ["run/large", "run/small"]  # no marker left


def test_an_interrupted_upload_is_resumed_sending_only_the_missing_parts(s3_place: Place) -> None:
    first = s3_place.make()
    assert isinstance(first, S3Store)
    first.multipart.before_part = fail_after(3, ConnectionError("network down"))
    tried = count_uploaded_parts(first)
    with pytest.raises(ConnectionError):
        first.put("run/model", DATA)
    assert sorted(tried) == [1, 2, 3]
    assert not first.exists("run/model")  # an unfinished upload is no object
    (upload,) = uploads()
    marker = json.loads(first.get("run/.model.upload"))  # which bytes it holds
    assert marker == {
        "upload_id": upload["UploadId"],
        "part_size": PART,
        "bytes": len(DATA),
        "parts_sha256": composite_sha256(DATA, PART),  # S3's checksum of the finished object
    }

    again = s3_place.make()  # another process, as after a restart
    assert isinstance(again, S3Store)
    sent = count_uploaded_parts(again)
    again.put("run/model", DATA)
    assert sorted(sent) == [4, 5, 6, 7]
    assert again.get("run/model") == DATA
    assert uploads() == [] and again._keys("run") == ["run/model"]  # the marker went too


def test_other_bytes_at_the_same_key_start_over(s3_place: Place) -> None:
    store = s3_place.make()
    assert isinstance(store, S3Store)
    store.multipart.before_part = fail_after(3, ConnectionError("network down"))
    with pytest.raises(ConnectionError):
        store.put("run/model", DATA)
    store.multipart.before_part = None
    other = DATA[::-1]
    sent = count_uploaded_parts(store)
    store.put("run/model", other)
    assert sorted(sent) == [1, 2, 3, 4, 5, 6, 7]  # nothing of the other upload is reused
    assert store.get("run/model") == other
    assert uploads() == []  # the abandoned one was aborted


def test_an_error_s3_answered_aborts_the_upload(s3_place: Place) -> None:
    store = s3_place.make()
    assert isinstance(store, S3Store)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "UploadPart")
    store.multipart.before_part = fail_after(2, denied)
    with pytest.raises(ClientError, match="AccessDenied"):
        store.put("run/model", DATA)
    assert uploads() == [] and store._keys("run") == []  # no upload, no marker


def test_create_of_a_large_object_is_conditional_too(s3_place: Place) -> None:
    store = s3_place.make()
    store.create("run/big", DATA)
    with pytest.raises(FileExistsError):
        store.create("run/big", DATA[::-1])
    assert store.get("run/big") == DATA and uploads() == []


def test_sweep_aborts_abandoned_uploads_only(s3_place: Place) -> None:
    dead = s3_place.make()
    assert isinstance(dead, S3Store)
    dead.multipart.before_part = fail_after(1, KeyboardInterrupt("killed"))
    with pytest.raises(KeyboardInterrupt):
        dead.put("run/ckpt-000000000002/model", DATA)
    assert dead._keys("run") == ["run/ckpt-000000000002/.model.upload"]
    # Young uploads are left alone (their writer may come back to resume them).
    started_s = uploads()[0]["Initiated"].timestamp()
    young = s3_place.make(clock=lambda: started_s + 10)
    assert young.sweep("run") == [] and len(uploads()) == 1
    # An upload this process is sending now is never swept, however old.
    store = s3_place.make(stale_upload_s=0)
    assert isinstance(store, S3Store)
    swept_mid_upload: list[list[str]] = []

    def sweep_at_part_2(number: int) -> None:
        if number == 2:
            swept_mid_upload.append(store.sweep("live"))

    store.multipart.before_part = sweep_at_part_2
    store.put("live/model", DATA)
    assert swept_mid_upload == [[]] and store.get("live/model") == DATA
    # The abandoned one goes, with its marker.
    assert store.sweep("run") == ["run/ckpt-000000000002/model"]
    assert uploads() == [] and store._keys("run") == []


def test_a_writer_killed_mid_upload_is_resumed_by_the_next(s3_place: Place) -> None:
    """The manager on S3: the killed writer's checkpoint is never latest; the next writer (once
    the lease ran out) saves the same step, sending only the parts that were missing."""
    first = s3_place.manager()
    first.save(1, {"model": b"one"}, {"step": 1})
    assert isinstance(first.store, S3Store)
    first.store.multipart.before_part = fail_after(4, KeyboardInterrupt("killed"))
    with pytest.raises(KeyboardInterrupt):
        first.save(2, {"model": DATA, "optim": b"o"}, {"step": 2})
    latest = s3_place.manager().latest()
    assert latest is not None and latest.step == 1
    s3_place.clock.now_s += 61
    # The sweep at its first save spares young uploads (moto dates every upload 2010: "young"
    # takes a large threshold here), so that it can resume them.
    heir = s3_place.manager(stale_upload_s=1e12)
    assert isinstance(heir.store, S3Store)
    sent = count_uploaded_parts(heir.store)
    heir.save(2, {"model": DATA, "optim": b"o"}, {"step": 2})
    assert sorted(sent) == [5, 6, 7]
    found = heir.latest()
    assert found is not None and found.step == 2 and found.parts["model"] == DATA
    heir.close()


def test_region_and_bucket_come_from_the_uri(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store, prefix = open_store("s3://carbonshift-ckpt/team/a?region=eu-west-1")
    assert isinstance(store, S3Store) and prefix == ""
    assert store.uri == "s3://carbonshift-ckpt/team/a"
    assert store.client.meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    default, _ = open_store("s3://carbonshift-ckpt")
    assert isinstance(default, S3Store) and default.client.meta.region_name == "ap-south-1"
    assert default.uri == "s3://carbonshift-ckpt"


def test_a_missing_bucket_is_an_error_not_an_empty_store(aws: str) -> None:
    m = CheckpointManager(S3Store("no-such-bucket", "jobs"), "run")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        m.latest()
