"""Where checkpoints live, as a URI: a folder (`/data/ckpt`, `file:///data/ckpt`), an S3 prefix
(`s3://bucket/prefix`, optionally `?region=eu-west-1`) or a GCS prefix (`gs://bucket/prefix`).

Parsing reaches no network: a config is checked here before any client is made."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SUPPORTED = "a folder, file:///folder, s3://bucket/prefix or gs://bucket/prefix"
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class StoreUri:
    scheme: str  # "file", "s3" or "gs"
    path: str  # the folder (file) or the key prefix inside the bucket, without slashes around
    bucket: str = ""
    region: str | None = None  # s3 only; None: the SDK's default (AWS_DEFAULT_REGION, config)

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"{self.scheme}://{self.bucket}/{self.path}".rstrip("/")


def redacted(uri: str) -> str:
    """The URI as errors may show it: no user or password, no query values."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(f"{k}=..." for k in parse_qs(parts.query, keep_blank_values=True))
    if "@" in parts.netloc:
        netloc = f"...@{netloc}"
    shown = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path
    return shown + (f"?{query}" if query else "")


def parse_store_uri(uri: str, field: str = "checkpoint_store") -> StoreUri:
    """The parts of a checkpoint location; ValueError names `field`, what is wrong and the fix."""
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"{field}: empty; give {SUPPORTED}")
    shown = redacted(uri)  # errors never echo a password or a signed query
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return StoreUri("file", uri)
    scheme = scheme.lower()
    if scheme == "file":
        if not rest.strip():
            raise ValueError(f"{field}: {shown!r} names no folder; give file:///path/to/folder")
        return StoreUri("file", rest)
    if scheme not in ("s3", "gs"):
        raise ValueError(
            f"{field}: scheme {scheme!r} of {shown!r} is not supported; give {SUPPORTED}"
        )
    parts = urlsplit(uri)
    if "@" in parts.netloc:  # not echoed: it may hold a secret
        raise ValueError(
            f"{field}: a {scheme}:// URI takes no user or password; credentials come from the "
            "SDK's default chain (environment, profile, instance or workload identity)"
        )
    if parts.fragment:
        raise ValueError(f"{field}: {shown!r} has a '#' part; remove it")
    bucket = parts.netloc
    _check_bucket(scheme, bucket, shown, field)
    path = parts.path.strip("/")
    if any(c in ("", ".", "..") for c in path.split("/")) and path:
        raise ValueError(
            f"{field}: prefix {path!r} of {shown!r} has an empty, '.' or '..' component; "
            "write it as a/b/c"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    allowed = {"region"} if scheme == "s3" else set()
    unknown = sorted(set(query) - allowed)
    if unknown:
        what = "only ?region=<aws region>" if allowed else "no query parameters"
        raise ValueError(
            f"{field}: {shown!r}: unknown parameter(s) {unknown}; {scheme}:// takes {what}"
        )
    region = query.get("region", [None])[-1]
    if region is not None and not _REGION.match(region):
        raise ValueError(
            f"{field}: region {region!r} of {shown!r} is not an AWS region (us-east-1)"
        )
    return StoreUri(scheme, path, bucket, region)


def _check_bucket(scheme: str, bucket: str, uri: str, field: str) -> None:
    if not bucket:
        raise ValueError(f"{field}: {uri!r} names no bucket; write {scheme}://bucket/prefix")
    rules = (
        "3-63 characters: lowercase letters, digits, '.' and '-', starting and ending with a "
        "letter or digit"
        if scheme == "s3"
        else "3-63 characters (222 with dots): lowercase letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit, not starting with 'goog'"
    )
    pattern = _S3_BUCKET if scheme == "s3" else _GCS_BUCKET
    ok = bool(pattern.match(bucket)) and ".." not in bucket and not _is_ip(bucket)
    if scheme == "gs":
        ok = ok and all(len(c) <= 63 for c in bucket.split(".")) and not bucket.startswith("goog")
        ok = ok and ("." in bucket or len(bucket) <= 63)
    if not ok:
        raise ValueError(f"{field}: bucket {bucket!r} of {uri!r} is not a valid name: {rules}")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
