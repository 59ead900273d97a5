"""Which store a checkpoint URI names, and the errors for the ones that name none."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from carbonshift.checkpoint import LocalStore, StoreUri, manager_for, open_store, parse_store_uri
from carbonshift.config import TrainingConfig


def test_folders_are_local_stores(tmp_path: Path) -> None:
    for uri in (str(tmp_path / "a"), f"file://{tmp_path}/a"):
        store, prefix = open_store(uri)
        assert isinstance(store, LocalStore) and prefix == ""
        assert store.uri == f"file://{(tmp_path / 'a').resolve()}"
    reader, _ = open_store(str(tmp_path / "b"), create=False)
    assert isinstance(reader, LocalStore) and not (tmp_path / "b").exists()


def test_bucket_uris_parse_without_any_network() -> None:
    assert parse_store_uri("s3://my-bucket/team/ckpt/") == StoreUri("s3", "team/ckpt", "my-bucket")
    assert parse_store_uri("S3://my-bucket") == StoreUri("s3", "", "my-bucket")
    assert parse_store_uri("s3://my.bucket/x?region=eu-west-1").region == "eu-west-1"
    assert parse_store_uri("gs://my_bucket/x") == StoreUri("gs", "x", "my_bucket")
    assert parse_store_uri("gs://my_bucket/x").uri == "gs://my_bucket/x"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/x", "checkpoint_store: scheme 'ftp' of 'ftp://host/x' is not supported; "
                         "give a folder, file:///folder, s3://bucket/prefix or gs://bucket/prefix"),
        ("azure://c/x", "scheme 'azure'"),
        ("", "checkpoint_store: empty"),
        ("file://", "names no folder"),
        ("s3:///prefix", "names no bucket; write s3://bucket/prefix"),
        ("s3://ab/x", "bucket 'ab' of 's3://ab/x' is not a valid name: 3-63 characters"),
        ("s3://My-Bucket/x", "bucket 'My-Bucket'"),
        ("s3://my_bucket/x", "bucket 'my_bucket'"),  # GCS allows '_', S3 does not
        ("s3://a..b/x", "bucket 'a..b'"),
        ("s3://192.168.1.1/x", "bucket '192.168.1.1'"),
        ("s3://-bucket/x", "bucket '-bucket'"),
        ("s3://" + "a" * 64 + "/x", "is not a valid name"),
        ("s3://user:secret@bucket/x", "takes no user or password; credentials come from"),
        ("gs://googbucket/x", "bucket 'googbucket'"),
        ("gs://" + "a" * 64 + "/x", "is not a valid name"),
        ("s3://bucket/a//b", "prefix 'a//b' of 's3://bucket/a//b' has an empty, '.' or '..'"),
        ("gs://bucket/a/../b", "'..' component"),
        ("s3://bucket/x?regoin=us-east-1", "unknown parameter(s) ['regoin']; s3:// takes only"),
        ("gs://bucket/x?region=us-east-1", "gs:// takes no query parameters"),
        ("s3://bucket/x?region=mars", "region 'mars' of 's3://bucket/x?region=...' is not"),
        ("s3://bucket/x#frag", "has a '#' part"),
    ],
)
def test_bad_uris_are_clear_errors(uri: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        open_store(uri)
    assert message in str(e.value) and "secret" not in str(e.value)
    with pytest.raises(ValidationError, match="checkpoint_store"):
        TrainingConfig(checkpoint_store=uri)


def test_an_unknown_scheme_never_becomes_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for uri in ("az://bucket/x", "http://host/x"):
        with pytest.raises(ValueError, match="is not supported"):
            open_store(uri)
    assert list(tmp_path.iterdir()) == []


def test_the_config_accepts_every_supported_store() -> None:
    for uri in (".carbonshift/checkpoints", "file:///data/ckpt", "s3://my-bucket/team?region=us-west-2",
                "gs://my-bucket/team"):
        assert TrainingConfig(checkpoint_store=uri).checkpoint_store == uri


def test_resume_from_names_its_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resume_from: scheme 'ftp'"):
        manager_for("ftp://x/run/ckpt-000000000001")
    for uri in ("s3://bucket-a/ckpt-000000000001", "s3://bucket-a"):
        with pytest.raises(ValueError, match="resume_from: .* names no run folder"):
            manager_for(uri)


def test_resume_from_a_bucket_uri_opens_its_run_folder(aws: str, gcs: str) -> None:
    m = manager_for("s3://bucket-a/team/nightly/run-1/ckpt-000000000042", keep=2)
    assert m.uri == "s3://bucket-a/team/nightly/run-1" and m.prefix == "run-1" and m.keep == 2
    assert m.store.uri == "s3://bucket-a/team/nightly"
    assert manager_for("s3://bucket-a/run-1").uri == "s3://bucket-a/run-1"
    g = manager_for("gs://bucket-b/nightly/run-1")
    assert g.uri == "gs://bucket-b/nightly/run-1" and g.store.uri == "gs://bucket-b/nightly"


@pytest.mark.parametrize("uri", [
    "https://alice:hunter2secret@host/x",
    "gs://bucket/p?token=hunter2secret",
    "s3://bucket/x?region=eu-west-1&X-Amz-Signature=hunter2secret",
    "gs://BAD_BUCKET/x?sig=hunter2secret",
    "s3://AKIA:hunter2secret@bucket/x",
])
def test_errors_never_echo_a_password_or_a_signed_query(uri: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_store_uri(uri)
    assert "hunter2secret" not in str(error.value) and "checkpoint_store" in str(error.value)
