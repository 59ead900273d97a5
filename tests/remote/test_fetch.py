"""The job's code archive, fetched from a store onto the VM and unpacked where it may go."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from carbonshift.checkpoint import LocalStore
from carbonshift.remote.fetch import fetch, main


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_a_tar_gz_from_the_store_is_unpacked(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("code/job.tar.gz", tar_gz({"mytrain/__init__.py": b"X = 1\n"}))
    assert main([f"{store.uri}/code/job.tar.gz", str(tmp_path / "code")]) == 0
    assert (tmp_path / "code" / "mytrain" / "__init__.py").read_text() == "X = 1\n"


def test_a_zip_is_unpacked(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("job.zip", zipped({"m.py": b"pass\n"}))
    assert fetch(f"{store.uri}/job.zip", tmp_path / "code") == ["m.py"]


@pytest.mark.parametrize(("name", "archive"), [
    ("evil.tar.gz", tar_gz({"../escaped.py": b"x"})),
    ("evil.tgz", tar_gz({}, links={"escaped.py": "../../escaped.py"})),
    ("evil.zip", zipped({"../escaped.py": b"x"})),
])
def test_no_member_lands_outside_the_folder(tmp_path: Path, name: str, archive: bytes) -> None:
    store = LocalStore(tmp_path / "store")
    store.put(name, archive)
    with pytest.raises(ValueError, match=name):
        fetch(f"{store.uri}/{name}", tmp_path / "out" / "code")
    assert not (tmp_path / "out" / "escaped.py").exists()
    assert not list(tmp_path.rglob("escaped.py"))


def test_an_absolute_member_lands_inside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("abs.tar.gz", tar_gz({"/abs/inside.py": b"x"}))
    fetch(f"{store.uri}/abs.tar.gz", tmp_path / "code")
    assert (tmp_path / "code" / "abs" / "inside.py").read_bytes() == b"x"


def test_what_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"give a \.tar\.gz"):
        fetch(f"file://{tmp_path}/code.whl", tmp_path / "code")
    assert main(["only-one"]) == 2
