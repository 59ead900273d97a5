"""Build providers and chains by name, as the CLI and the flows configure them.

`ForecastConfig` is the serialisable part (a flow parameter, the CLI's options); it lives here,
next to the chain building it configures, and `carbonshift.config` re-exports it with the rest of
the configuration model. `ProviderSettings` adds the runtime wiring no parameter carries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from carbonshift.catalog import Catalog, default_catalog
from carbonshift.providers.base import ForecastProvider
from carbonshift.providers.cache import ForecastCache, default_cache_dir
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
SELF_HOSTED = "carbon-aware-sdk"


def _known_provider(name: str) -> str:
    """Each entry of the chain on its own, so that the error's location names the entry."""
    if name.strip() not in NAMES:
        raise PydanticCustomError(
            "unknown_provider",
            "unknown provider {name}: use one of {names}",
            {"name": repr(name), "names": ", ".join(NAMES)},
        )
    return name.strip()


class ForecastConfig(BaseModel):
    """Where forecasts come from. Secrets are not here: they come as `Credentials`.

    A bad chain fails validation, naming the entry and the fix, wherever the model is built: a
    flow parameter fails the run before it starts, a CLI option exits with one line."""

    providers: list[Annotated[str, AfterValidator(_known_provider)]] = Field(
        default_factory=lambda: ["replay", "static"],
        description="provider chain in order, e.g. electricitymaps, watttime, static",
    )
    signal: Signal = Field(default=Signal.LCA, description="lca or direct (Electricity Maps)")
    base_urls: dict[str, str] = Field(
        default_factory=dict,
        validate_default=True,  # the self-hosted check below runs when none are given too
        description="per-provider API address",
    )
    cache_dir: str | None = Field(default=None, description="forecast cache folder")
    traces_dir: str | None = Field(default=None, description="replay: folder of CSV traces")
    replay_as_of_now: bool = Field(default=True, description="replay: shift traces onto today")

    @field_validator("providers")
    @classmethod
    def _not_empty(cls, providers: list[str]) -> list[str]:
        if not providers:
            raise PydanticCustomError(
                "empty_chain",
                "empty: give a provider chain, e.g. ['replay', 'static'] (one of {names})",
                {"names": ", ".join(NAMES)},
            )
        return providers

    @field_validator("base_urls")
    @classmethod
    def _self_hosted_has_address(
        cls, base_urls: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        if SELF_HOSTED in info.data.get("providers", ()) and not base_urls.get(SELF_HOSTED):
            raise PydanticCustomError(
                "self_hosted_needs_address",
                "carbon-aware-sdk is self-hosted: give its address as "
                "base_urls: {carbon-aware-sdk: http://...}",
            )
        return base_urls

    def cache(self) -> ForecastCache:
        """The disk cache in `cache_dir`, or the default folder."""
        return ForecastCache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())

    def chain(self, credentials: Credentials, cache: ForecastCache | None = None) -> ProviderChain:
        """The configured chain with the default wiring. Credentials are the caller's to find
        (the environment, Prefect Secret blocks): the model holds no secret."""
        settings = ProviderSettings(self, credentials=credentials, catalog=default_catalog())
        return build_chain(settings, cache)


@dataclass
class ProviderSettings:
    """A `ForecastConfig` and the runtime wiring no parameter carries."""

    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    credentials: Credentials = field(default_factory=Credentials)
    catalog: Catalog | None = None
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
    forecast = settings.forecast
    url = forecast.base_urls.get(name)
    creds = settings.credentials
    retry, sleep, scrubber = settings.retry, settings.sleep, settings.scrubber
    if name == "electricitymaps":
        return ElectricityMaps(
            creds.electricitymaps_token,
            signal=forecast.signal,
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
            url, signal=forecast.signal, client=client, retry=retry, sleep=sleep, scrubber=scrubber
        )
    if name == "replay":
        return Replay.from_dir(
            Path(forecast.traces_dir) if forecast.traces_dir else None,
            signal=forecast.signal,
            as_of_now=forecast.replay_as_of_now,
            clock=settings.clock,
            scrubber=scrubber,
        )
    if name == "static":
        if settings.catalog is None:
            raise ValueError("the static provider needs the catalog")
        return Static(settings.catalog, scrubber=scrubber)
    raise ValueError(f"unknown provider {name!r}: one of {', '.join(NAMES)}")


def build_chain(settings: ProviderSettings, cache: ForecastCache | None = None) -> ProviderChain:
    """One chain, one scrubber: the providers share `settings.scrubber`, which also learns
    every configured credential up front (a provider not in the chain may still be echoed)."""
    settings.scrubber.add(_secret(settings.credentials.electricitymaps_token))
    if settings.credentials.watttime_password is not None:
        settings.scrubber.add_basic_auth(
            settings.credentials.watttime_username or "",
            settings.credentials.watttime_password.get_secret_value(),
        )
    names = [n.strip() for n in settings.forecast.providers]
    if settings.client is None and any(n in HTTP_NAMES for n in names):
        # One client (one TLS context, one connection pool) for the chain, not one each.
        settings = replace(settings, client=httpx.Client(timeout=DEFAULT_TIMEOUT))
    providers = [build_provider(n, settings) for n in names]
    return ProviderChain(providers, cache=cache, scrubber=settings.scrubber)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
