"""Build providers and chains by name, as the CLI and the flows configure them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from carbonshift.catalog import Catalog
from carbonshift.providers.base import ForecastProvider
from carbonshift.providers.cache import ForecastCache
from carbonshift.providers.carbon_aware_sdk import CarbonAwareSdk
from carbonshift.providers.chain import ProviderChain
from carbonshift.providers.credentials import Credentials
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from carbonshift.providers.replay import Replay
from carbonshift.providers.secrets import Scrubber
from carbonshift.providers.static import Static
from carbonshift.providers.ukneso import UkNeso
from carbonshift.providers.watttime import WattTime
from carbonshift.series import Signal

NAMES = ("electricitymaps", "watttime", "ukneso", "carbon-aware-sdk", "replay", "static")


@dataclass
class ProviderSettings:
    """Everything a chain needs besides the names; `base_urls` override per provider name."""

    credentials: Credentials = field(default_factory=Credentials)
    catalog: Catalog | None = None
    base_urls: dict[str, str] = field(default_factory=dict)
    signal: Signal = Signal.LCA
    traces_dir: Path | None = None
    replay_as_of_now: bool = True
    client: httpx.Client | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The one scrubber of the chain: every provider adds its credentials (and login tokens).
    scrubber: Scrubber = field(default_factory=Scrubber)


HTTP_NAMES = ("electricitymaps", "watttime", "ukneso", "carbon-aware-sdk")


def build_provider(name: str, settings: ProviderSettings) -> ForecastProvider:
    client = settings.client
    if client is None and name in HTTP_NAMES:
        client = httpx.Client(timeout=DEFAULT_TIMEOUT)
    url = settings.base_urls.get(name)
    creds = settings.credentials
    retry, sleep, scrubber = settings.retry, settings.sleep, settings.scrubber
    if name == "electricitymaps":
        return ElectricityMaps(
            creds.electricitymaps_token,
            signal=settings.signal,
            base_url=url,
            client=client,
            retry=retry,
            sleep=sleep,
            clock=settings.clock,
            scrubber=scrubber,
        )
    if name == "watttime":
        return WattTime(
            creds.watttime_username,
            creds.watttime_password,
            base_url=url,
            client=client,
            retry=retry,
            sleep=sleep,
            clock=settings.clock,
            scrubber=scrubber,
        )
    if name == "ukneso":
        return UkNeso(base_url=url, client=client, retry=retry, sleep=sleep, scrubber=scrubber)
    if name == "carbon-aware-sdk":
        if not url:
            raise ValueError("carbon-aware-sdk is self-hosted: give its address (--base-url)")
        return CarbonAwareSdk(
            url, signal=settings.signal, client=client, retry=retry, sleep=sleep, scrubber=scrubber
        )
    if name == "replay":
        return Replay.from_dir(
            settings.traces_dir,
            signal=settings.signal,
            as_of_now=settings.replay_as_of_now,
            clock=settings.clock,
            scrubber=scrubber,
        )
    if name == "static":
        if settings.catalog is None:
            raise ValueError("the static provider needs the catalog")
        return Static(settings.catalog, scrubber=scrubber)
    raise ValueError(f"unknown provider {name!r}: one of {', '.join(NAMES)}")


def build_chain(
    names: Sequence[str], settings: ProviderSettings, cache: ForecastCache | None = None
) -> ProviderChain:
    """One chain, one scrubber: the providers share `settings.scrubber`, which also learns
    every configured credential up front (a provider not in the chain may still be echoed)."""
    settings.scrubber.add(_secret(settings.credentials.electricitymaps_token))
    if settings.credentials.watttime_password is not None:
        settings.scrubber.add_basic_auth(
            settings.credentials.watttime_username or "",
            settings.credentials.watttime_password.get_secret_value(),
        )
    names = [n.strip() for n in names]
    if settings.client is None and any(n in HTTP_NAMES for n in names):
        # One client (one TLS context, one connection pool) for the chain, not one each.
        settings = replace(settings, client=httpx.Client(timeout=DEFAULT_TIMEOUT))
    providers = [build_provider(n, settings) for n in names]
    return ProviderChain(providers, cache=cache, scrubber=settings.scrubber)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
