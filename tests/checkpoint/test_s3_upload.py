"""S3 multipart uploads, part by part: each part's SHA-256 is computed once and is the one its
bytes have on the wire; a part whose bytes do not match its checksum is refused and the upload
aborted; a resumed upload re-sends parts that are not whole, and the manifest committed after a
resume carries the SHA-256 of the bytes. Through boto3 against moto's server.

moto neither checks a part's checksum on arrival nor lists part checksums; S3 does both. Where a
test needs that, a botocore event hook on the client acts as S3 would (the requests still go
through the real SDK, and the rest to moto)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError

from carbonshift.checkpoint.s3 import S3Store
from carbonshift.checkpoint.s3_upload import PartBody, parts_sha256
from tests.checkpoint.conftest import BUCKET, MiB, Place

pytestmark = pytest.mark.integration

PART = 5 * MiB
DATA = os.urandom(PART * 4 + 777)  # 5 parts, the last one short


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def body_of(request: AWSPreparedRequest) -> bytes:
    """The bytes a request sends (a file body is read, then rewound for the real send)."""
    body = request.body
    if hasattr(body, "read"):
        start = body.tell()
        raw = body.read()
        body.seek(start)
        return bytes(raw)
    return bytes(body or b"")


class _Stream:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def stream(self, **_: Any) -> Any:
        yield self.raw


def verify_part_checksums_as_s3_does(store: S3Store) -> dict[int, tuple[str, bytes]]:
    """Each UploadPart's x-amz-checksum-sha256 is checked against its body, as S3 does on
    arrival: a mismatch is answered with S3's 400 BadDigest (moto would take the part). Returns
    what was sent: part number -> (checksum header, body)."""
    sent: dict[int, tuple[str, bytes]] = {}

    def check(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        number = int(request.url.split("partNumber=")[1].split("&")[0])
        header = request.headers["x-amz-checksum-sha256"]
        checksum = header.decode() if isinstance(header, bytes) else header
        body = body_of(request)
        sent[number] = (checksum, body)
        if b64_sha256(body) == checksum:
            return None  # on to moto
        error = (
            b"<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the "
            b"calculated checksum.</Message></Error>"
        )
        return AWSResponse(request.url, 400, {}, _Stream(error))

    store.client.meta.events.register("before-send.s3.UploadPart", check)
    return sent


def uploads() -> list[dict[str, Any]]:
    return list(boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def test_part_body_reads_in_blocks_and_rewinds_for_a_retry() -> None:
    data = bytes(range(256)) * 40
    body = PartBody(memoryview(data)[100:9000])
    assert len(body) == 8900 and body.seekable() and body.readable()
    blocks = []
    while block := body.read(1000):
        assert isinstance(block, bytes) and len(block) <= 1000
        blocks.append(block)
    assert b"".join(blocks) == data[100:9000] and body.tell() == 8900
    assert body.read(10) == b"" and body.read() == b""
    assert body.seek(0) == 0 and body.read() == data[100:9000]  # a retry sends it all again
    assert body.seek(-5, 2) == 8895 and body.read(100) == data[8995:9000]
    body.seek(10)
    assert body.seek(5, 1) == 15 and body.read(3) == data[115:118]
    with pytest.raises(ValueError, match="before the start"):
        body.seek(-1)


def test_parts_sha256_is_s3s_checksum_of_the_parts() -> None:
    digests = [hashlib.sha256(DATA[i : i + PART]).digest() for i in range(0, len(DATA), PART)]
    assert parts_sha256(digests) == b64_sha256(b"".join(digests))
    assert parts_sha256(digests) != parts_sha256(digests[::-1])  # the order counts


def test_each_part_goes_with_the_sha256_of_exactly_its_bytes(s3_place: Place) -> None:
    store = s3_place.make()
    assert isinstance(store, S3Store)
    sent = verify_part_checksums_as_s3_does(store)
    store.put("run/model", DATA)
    assert sorted(sent) == [1, 2, 3, 4, 5]
    assert b"".join(sent[n][1] for n in sorted(sent)) == DATA
    for checksum, body in sent.values():
        assert checksum == b64_sha256(body)
    head = boto3.client("s3").head_object(
        Bucket=BUCKET, Key="jobs/run/model", ChecksumMode="ENABLED"
    )
    digests = [hashlib.sha256(sent[n][1]).digest() for n in sorted(sent)]
    assert head["ChecksumSHA256"].split("-")[0] == parts_sha256(digests)  # moto omits "-5"
    assert store.get("run/model") == DATA


def test_a_part_whose_bytes_do_not_match_its_checksum_is_refused(s3_place: Place) -> None:
    """The caller's buffer changed after part 3 was hashed (a training loop reusing it): S3
    refuses the part, the upload is aborted, nothing is left, and the error says why."""
    store = s3_place.make()
    assert isinstance(store, S3Store)
    verify_part_checksums_as_s3_does(store)
    buffer = bytearray(DATA)

    def change_part_3(number: int) -> None:
        if number == 3:
            buffer[2 * PART] ^= 0xFF  # after its SHA-256 was taken, before it is sent

    store.multipart.before_part = change_part_3
    with pytest.raises(ClientError, match="BadDigest"):
        store.put("run/model", buffer)  # type: ignore[arg-type]  # a bytes-like buffer
    assert not store.exists("run/model")
    assert uploads() == [] and store._keys("run") == []  # aborted, its marker gone


def test_a_resumed_upload_resends_parts_that_are_not_whole(s3_place: Place) -> None:
    """A writer killed in the middle of part 3's body: S3 never keeps half a part, but a part
    that did arrive with other bytes (shorter, or of the same size) must not be taken for one
    of these. Sizes are checked against ListParts; checksums too where S3 lists them (moto does
    not: the hook adds them, as S3 would list them)."""
    first = s3_place.make()
    assert isinstance(first, S3Store)

    def killed_in_part(number: int) -> None:
        if number >= 4:
            raise KeyboardInterrupt("killed")

    first.multipart.before_part = killed_in_part
    with pytest.raises(KeyboardInterrupt):
        first.put("run/model", DATA)
    (upload,) = uploads()
    s3, upload_id = boto3.client("s3"), upload["UploadId"]
    marker = json.loads(first.get("run/.model.upload"))
    assert marker["upload_id"] == upload_id and marker["bytes"] == len(DATA)
    # What the dead writer left in parts 2 and 3 is not what this data holds there.
    torn = DATA[PART : PART + PART // 2]  # part 2, cut short
    other = os.urandom(PART)  # part 3, the right size, other bytes
    listed: dict[int, str] = {}
    for number, body in ((2, torn), (3, other)):
        s3.upload_part(
            Bucket=BUCKET,
            Key="jobs/run/model",
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=b64_sha256(body),
        )
        listed[number] = b64_sha256(body)
    listed[1] = b64_sha256(DATA[:PART])

    heir = s3_place.make()
    assert isinstance(heir, S3Store)

    def list_checksums_as_s3_does(parsed: dict[str, Any], **_: Any) -> None:
        for part in parsed.get("Parts", []):
            part["ChecksumSHA256"] = listed[part["PartNumber"]]

    heir.client.meta.events.register("after-call.s3.ListParts", list_checksums_as_s3_does)
    sent = verify_part_checksums_as_s3_does(heir)
    heir.put("run/model", DATA)
    assert sorted(sent) == [2, 3, 4, 5]  # part 1 was whole; 2 and 3 were not
    assert heir.get("run/model") == DATA
    head = s3.head_object(Bucket=BUCKET, Key="jobs/run/model", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].split("-")[0] == marker["parts_sha256"]
    assert uploads() == [] and heir._keys("run") == ["run/model"]


def test_a_checkpoint_resumed_after_a_kill_mid_upload_has_its_sha256_in_the_manifest(
    s3_place: Place,
) -> None:
    first = s3_place.manager()
    assert isinstance(first.store, S3Store)

    def killed(number: int) -> None:
        if number >= 3:
            raise KeyboardInterrupt("killed")

    first.store.multipart.before_part = killed
    with pytest.raises(KeyboardInterrupt):
        first.save(7, {"model": DATA, "optim": b"o"}, {"step": 7})
    assert s3_place.manager().latest() is None  # the partial checkpoint is not a checkpoint
    s3_place.clock.now_s += 61  # the dead writer's lease runs out
    heir = s3_place.manager(stale_upload_s=1e12)  # moto dates uploads 2010: keep them "young"
    assert isinstance(heir.store, S3Store)
    sent = verify_part_checksums_as_s3_does(heir.store)
    heir.save(7, {"model": DATA, "optim": b"o"}, {"step": 7})
    assert sorted(sent) == [3, 4, 5]
    manifest = json.loads(heir.store.get("run/ckpt-000000000007/MANIFEST.json"))
    assert manifest["parts"]["model"] == {
        "bytes": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(),
    }
    found = heir.latest()
    assert found is not None and found.step == 7 and found.parts["model"] == DATA
    heir.close()
