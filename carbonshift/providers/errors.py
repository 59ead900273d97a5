"""The providers' typed errors, apart from the port so that the scrubber can raise them."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider could not answer. Messages never carry credentials: every error that leaves a
    provider passes through its chain's scrubber (`carbonshift.providers.secrets`)."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        self.detail = message
        super().__init__(f"{provider}: {message}")


class ProviderUnavailable(ProviderError):
    """Timeouts, connection failures, 5xx or 429 that outlasted the retries."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx): a bad zone, bad credentials, no access."""


class ProviderBadResponse(ProviderError):
    """The provider answered, but not with a usable series: malformed, missing, empty, wrong."""


class ForecastUnavailable(Exception):
    """Nothing in a provider chain could answer, and the static default was not allowed."""
