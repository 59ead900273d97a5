"""JSON over HTTP with explicit timeouts, bounded retries and credentials kept out of errors."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from carbonshift.providers.base import ProviderBadResponse, ProviderRejected, ProviderUnavailable
from carbonshift.providers.secrets import Scrubber

log = logging.getLogger("carbonshift.providers")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for timeouts, connection errors, 5xx and 429 (which waits `Retry-After`).

    Each backoff wait is spread by `jitter` (0.2: between 0.8 and 1.2 times the step), so
    clients that failed together do not retry together; `uniform` is the random source in
    [0, 1), injected by tests. A `Retry-After` is honoured as given, up to `max_retry_after_s`."""

    attempts: int = 4
    backoff_s: Sequence[float] = (0.5, 2.0, 5.0)
    max_retry_after_s: float = 60.0
    jitter: float = 0.2
    uniform: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        base = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
        spread = min(max(self.jitter, 0.0), 1.0)
        u = self.uniform()
        u = min(max(u, 0.0), 1.0) if math.isfinite(u) else 0.5
        return base * (1.0 + spread * (2.0 * u - 1.0))


class AuthExpired(ProviderRejected):
    """HTTP 401: the caller may refresh its token and try once more."""


@dataclass
class JsonApi:
    provider: str
    base_url: str
    client_: httpx.Client | None = None
    retry_: RetryPolicy | None = None
    sleep: Callable[[float], None] = time.sleep
    scrubber: Scrubber = field(default_factory=Scrubber)
    client: httpx.Client = field(init=False)
    retry: RetryPolicy = field(init=False)

    def __post_init__(self) -> None:
        with contextlib.suppress(httpx.InvalidURL):  # a bad address: the request will say so
            self.scrubber.add(httpx.URL(self.base_url).password)  # https://user:pw@proxy/
        self.client = self.client_ or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self.retry = self.retry_ or RetryPolicy()

    def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Any:
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        last = ""
        for attempt in range(self.retry.attempts):
            try:
                response = self.client.get(url, params=params, headers=headers, auth=auth)
            except httpx.TimeoutException as e:
                last = f"timed out ({type(e).__name__}) on {path}"
            except httpx.TransportError as e:
                last = f"cannot connect for {path}: {self._clean(str(e))}"
            except httpx.InvalidURL as e:  # not worth retrying: the address itself is wrong
                raise ProviderRejected(
                    self.provider,
                    f"invalid address for {path} ({self._clean(str(e))}): give the base URL as "
                    "http(s)://host[:port][/path]",
                ) from None
            else:
                status = response.status_code
                if status < 400:
                    return self._json(response, path)
                if status == 401:
                    raise AuthExpired(self.provider, f"HTTP 401 on {path}: credentials refused")
                if status == 429:
                    last = f"rate limited (HTTP 429) on {path}"
                    if attempt + 1 < self.retry.attempts:
                        wait = self._retry_after(response, attempt)
                        self._log_retry(last, attempt, wait)
                        self.sleep(wait)
                    continue
                if status < 500:
                    raise ProviderRejected(
                        self.provider,
                        f"HTTP {status} on {path}: {self._clean(response.text)}",
                    )
                last = f"HTTP {status} on {path}"
            if attempt + 1 < self.retry.attempts:
                wait = self.retry.delay(attempt)
                self._log_retry(last, attempt, wait)
                self.sleep(wait)
        raise ProviderUnavailable(self.provider, f"{last}, after {self.retry.attempts} attempts")

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderBadResponse(
                self.provider, f"{path} did not return JSON: {self._clean(response.text, 80)!r}"
            ) from None

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After", "")
        try:
            wait = float(header)
        except ValueError:
            wait = math.nan
        if not math.isfinite(wait):  # an HTTP date, garbage, nan or inf: our own backoff
            wait = self.retry.delay(attempt)
        return min(max(wait, 0.0), self.retry.max_retry_after_s)

    def _log_retry(self, what: str, attempt: int, wait: float) -> None:
        log.warning(
            "%s: %s; retry %d/%d in %.1f s",
            self.provider,
            what,
            attempt + 1,
            self.retry.attempts - 1,
            wait,
        )

    def _clean(self, text: str, limit: int = 200) -> str:
        """Scrubbed first, then shortened: a cut must never leave half a secret behind."""
        return self.scrubber.scrub(text)[:limit]
