"""Spot and preemption notices, as the VM's metadata service gives them.

EC2 posts `spot/instance-action` two minutes before it stops or terminates a spot instance (404
until then); GCE sets `instance/preempted` to TRUE about 30 seconds before. Either way the run
checkpoints at once. Only the provider's own service is asked; one that cannot be reached (not
on that cloud, a firewall) means no notice, logged once.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import httpx

from carbonshift.remote.protocol import Provider

log = logging.getLogger("carbonshift.remote")

EC2_DEFAULT = "http://169.254.169.254"
GCE_DEFAULT = "metadata.google.internal"
TOKEN_TTL_S = 21600


class NoticeSource(Protocol):
    def notice(self) -> str | None:
        """What the provider announced (e.g. 'spot terminate at ...'), None when nothing."""
        ...


class NoNotice:
    def notice(self) -> str | None:
        return None


class _Http:
    """A short-timeout client that never goes through a proxy (metadata is link-local) and
    reports an unreachable service once."""

    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.client = httpx.Client(timeout=timeout_s, trust_env=False)
        self._warned = False

    def failed(self, detail: str) -> None:
        if not self._warned:
            log.warning(
                "%s: %s; no spot notice can be seen (checked again each poll)", self.what, detail
            )
            self._warned = True


class Ec2Notice:
    """IMDSv2: a session token (PUT /latest/api/token), then the instance action with it."""

    def __init__(self, endpoint: str | None = None, timeout_s: float = 1.0) -> None:
        base = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or EC2_DEFAULT
        self.base = base.rstrip("/")
        self._http = _Http(f"EC2 instance metadata at {self.base}", timeout_s)
        self._token: str | None = None

    def _get_token(self) -> str:
        r = self._http.client.put(
            f"{self.base}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
        )
        r.raise_for_status()
        return r.text

    def notice(self) -> str | None:
        try:
            for _ in range(2):  # a second try with a fresh token when the old one expired
                self._token = self._token or self._get_token()
                r = self._http.client.get(
                    f"{self.base}/latest/meta-data/spot/instance-action",
                    headers={"X-aws-ec2-metadata-token": self._token},
                )
                if r.status_code != 401:
                    break
                self._token = None
        except httpx.HTTPError as e:
            self._token = None
            self._http.failed(f"unreachable ({type(e).__name__}: {e})")
            return None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            self._http.failed(f"spot/instance-action answered HTTP {r.status_code}")
            return None
        try:
            action = r.json()
            return f"EC2 spot {action['action']} at {action['time']}"
        except (ValueError, KeyError, TypeError):
            return f"EC2 spot instance-action: {r.text[:200]}"


class GceNotice:
    """`instance/preempted` with the Metadata-Flavor header; TRUE once preemption began."""

    def __init__(self, host: str | None = None, timeout_s: float = 1.0) -> None:
        self.host = host or os.environ.get("GCE_METADATA_HOST") or GCE_DEFAULT
        self.url = f"http://{self.host}/computeMetadata/v1/instance/preempted"
        self._http = _Http(f"GCE metadata at {self.host}", timeout_s)

    def notice(self) -> str | None:
        try:
            r = self._http.client.get(self.url, headers={"Metadata-Flavor": "Google"})
        except httpx.HTTPError as e:
            self._http.failed(f"unreachable ({type(e).__name__}: {e})")
            return None
        if r.status_code != 200:
            self._http.failed(f"instance/preempted answered HTTP {r.status_code}")
            return None
        return "GCE preemption notice" if r.text.strip().upper() == "TRUE" else None


def notice_source(provider: Provider) -> NoticeSource:
    """The provider's own metadata service; a local run has none."""
    if provider == "aws":
        return Ec2Notice()
    if provider == "gcp":
        return GceNotice()
    return NoNotice()
