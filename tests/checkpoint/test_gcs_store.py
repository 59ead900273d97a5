"""GCS: the conditions the store sends (the emulator does not enforce ifGenerationMatch, so the
requests themselves are checked, as they leave the real client), chunked uploads, credentials.
Through google-cloud-storage against the GCS emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import storage

from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.checkpoint.gcs import GcsStore, default_client
from tests.checkpoint.conftest import BUCKET, Clock

pytestmark = pytest.mark.integration


class Wire:
    """The requests a storage.Client sends, seen on its HTTP session as they complete."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.seen: list[tuple[str, str, dict[str, list[str]]]] = []
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *_: Any, **__: Any) -> None:
        url = urlsplit(response.request.url or "")
        self.seen.append((response.request.method or "", url.path, parse_qs(url.query)))

    def conditions(self, method: str, path_part: str) -> list[list[str] | None]:
        """ifGenerationMatch of each `method` request whose path or query names `path_part`."""
        return [
            query.get("ifGenerationMatch")
            for m, path, query in self.seen
            if m == method and (path_part in path or path_part in str(query.get("name")))
        ]


@pytest.fixture
def wire(gcs: str) -> Iterator[Wire]:
    found = Wire()
    client = storage.Client(project="carbonshift-test", credentials=AnonymousCredentials(),
                            _http=found.session)
    client.create_bucket(BUCKET)
    yield found
    found.session.close()


def store_on(wire: Wire, **options: Any) -> GcsStore:
    client = storage.Client(project="carbonshift-test", credentials=AnonymousCredentials(),
                            _http=wire.session)
    return GcsStore(BUCKET, "jobs", client=client, renew_every_s=0, **options)


def test_a_manifest_is_created_only_if_absent(wire: Wire) -> None:
    m = CheckpointManager(store_on(wire), "run")
    m.save(1, {"model": b"one"}, {"step": 1})
    m.close()
    # Uploads name their object in the query (`name=`) or the body: the manifest's is the
    # only upload of the save that is conditional, and on generation 0 (no live object).
    uploads = [q for method, path, q in wire.seen if method == "POST" and "/upload/" in path]
    conditional = [q["ifGenerationMatch"] for q in uploads if "ifGenerationMatch" in q]
    assert len(uploads) == 3  # lock, part, manifest
    assert conditional == [["0"], ["0"]]  # the lock's creation and the manifest's


def test_the_lock_is_written_on_the_generation_it_read(wire: Wire) -> None:
    clock = Clock()
    store = store_on(wire, clock=clock)
    lock = store.lock("run/.writer.lock", "first")
    generation = store.bucket.get_blob("jobs/run/.writer.lock").generation
    wire.seen.clear()
    clock.now_s += 61  # its lease ran out: another writer takes it over
    store_on(wire, clock=clock).lock("run/.writer.lock", "second")
    replaced = [q for m, p, q in wire.seen if m == "POST" and "/upload/" in p]
    assert [q.get("ifGenerationMatch") for q in replaced] == [[str(generation)]]
    wire.seen.clear()
    assert not lock.held()  # the first finds out, and lets go without deleting the heir's lock
    lock.release()
    assert [m for m, _, _ in wire.seen if m == "DELETE"] == []
    assert store.exists("run/.writer.lock")


def test_release_deletes_only_the_generation_it_holds(wire: Wire) -> None:
    store = store_on(wire)
    lock = store.lock("run/.writer.lock", "me")
    generation = store.bucket.get_blob("jobs/run/.writer.lock").generation
    lock.release()
    deletes = [q for m, _, q in wire.seen if m == "DELETE"]
    assert deletes == [{"ifGenerationMatch": [str(generation)], "prettyPrint": ["false"]}]
    assert not store.exists("run/.writer.lock")


def test_large_objects_go_in_chunks(wire: Wire) -> None:
    store = store_on(wire, chunk_size=2 * 1024 * 1024)
    data = os.urandom(8 * 1024 * 1024 + 5)  # above 8 MiB the SDK makes a resumable upload
    store.put("run/model", data)
    chunks = [q for m, p, q in wire.seen if m == "PUT" and "/upload/" in p]
    assert len(chunks) == 5 and store.get("run/model") == data
    assert store.sweep("run") == []  # an unfinished upload is never an object to remove
    with pytest.raises(ValueError, match="chunk_size"):
        store_on(wire, chunk_size=1000)


def test_the_emulator_is_reached_anonymously(gcs: str) -> None:
    store, _ = open_store("gs://carbonshift-ckpt/team/a")
    assert isinstance(store, GcsStore) and store.uri == "gs://carbonshift-ckpt/team/a"
    assert isinstance(store.client._credentials, AnonymousCredentials)
    assert store.client.project == "carbonshift-test"


def test_outside_the_emulator_credentials_come_from_the_default_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(DefaultCredentialsError, match="missing.json"):
        default_client()
