"""Fetch the job's code archive onto the VM: `python -m carbonshift.remote.fetch <uri> <dest>`.

The URI is a store URI (read through open_store, as the instance's role) or https. The archive
(.tar.gz, .tgz, .tar or .zip) is unpacked into <dest>, which the bootstrap puts on PYTHONPATH;
no member may land outside it.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx

from carbonshift.remote.protocol import open_at

_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def download(uri: str) -> bytes:
    if uri.startswith(("https://", "http://")):
        r = httpx.get(uri, follow_redirects=True, timeout=60.0)
        r.raise_for_status()
        return r.content
    store, key = open_at(uri)
    return store.get(key)


def unpack(name: str, data: bytes, dest: Path) -> list[str]:
    """The archive's members, unpacked under `dest`; ValueError for a member that leaves it."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                target = (root / member).resolve()
                if target != root and root not in target.parents:
                    raise ValueError(f"{name}: member {member!r} would land outside {dest}")
            z.extractall(root)
            return z.namelist()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        try:
            t.extractall(root, filter="data")  # refuses absolute paths, '..', odd links
        except tarfile.FilterError as e:
            raise ValueError(f"{name}: {e}") from None
        return t.getnames()


def fetch(uri: str, dest: Path) -> list[str]:
    name = uri.rstrip("/").rpartition("/")[2]
    if not name.endswith(_SUFFIXES):
        raise ValueError(f"code archive {uri!r}: give a {', '.join(_SUFFIXES)} file")
    return unpack(name, download(uri), dest)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m carbonshift.remote.fetch <archive URI> <dest folder>", file=sys.stderr
        )
        return 2
    members = fetch(args[0], Path(args[1]))
    print(f"fetched {args[0]}: {len(members)} members into {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
