"""Forecast tasks: the provider chain behind Prefect retries and logging.

One cache layer only: the chain's disk cache (keyed by provider address, zone, signal and the
window it answered; the stale fallback needs it). Prefect's task cache is off: a key that missed
any of `traces_dir`, `base_urls`, `replay_as_of_now` or `cache_dir` let two configurations get
each other's forecasts, and it kept a failed fetch (None) for 30 minutes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from prefect import get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from carbonshift.catalog import default_catalog
from carbonshift.config import ForecastConfig
from carbonshift.providers import (
    Credentials,
    ForecastCache,
    ForecastUnavailable,
    ProviderChain,
    Served,
)

# Prefect Secret blocks read when the environment does not set the credential.
SECRET_BLOCKS = {
    "electricitymaps_token": "electricitymaps-api-token",
    "watttime_username": "watttime-username",
    "watttime_password": "watttime-password",
}


def chain_for(config: ForecastConfig, cache: ForecastCache | None = None) -> ProviderChain:
    """The configured chain, credentials from the environment or Secret blocks."""
    return config.chain(load_credentials(), cache)


def load_credentials() -> Credentials:
    """Environment variables first, then the Prefect Secret blocks in SECRET_BLOCKS."""
    found = Credentials.from_env().model_dump()
    for field, block in SECRET_BLOCKS.items():
        if found.get(field) is None:
            try:
                value = cast("Secret[Any]", Secret.load(block)).get()
            except ValueError:
                continue  # no such block: the provider will say which variable to set
            found[field] = value if field == "watttime_username" else SecretStr(str(value))
    return Credentials(**found)


@task(
    retries=1,
    retry_delay_seconds=[10],
    cache_policy=NO_CACHE,  # the disk cache is the one cache layer (see the module docstring)
    task_run_name="forecast-{region_key}",
)
def fetch_forecast(
    region_key: str, start: datetime, end: datetime, config: ForecastConfig
) -> Served | None:
    """The region's forecast through the chain; None (plan on the static default) if nothing
    answered and the chain has no static provider. Everything it logs comes from the chain,
    through its scrubber."""
    logger = get_run_logger()
    catalog = default_catalog()
    chain = chain_for(config, config.cache())
    try:
        served = chain.forecast(catalog.region(region_key), start, end)
    except ForecastUnavailable as e:
        logger.warning("%s; planning %s on the static default", e, region_key)
        return None
    for failure in served.failures:
        logger.warning("%s: skipped %s", region_key, failure)
    logger.info(
        "%s: %s forecast from %s (%s), %d points",
        region_key,
        served.source,
        served.provider,
        served.zone,
        len(served.series),
    )
    return served
