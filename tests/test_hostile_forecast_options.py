"""`carbonshift forecast` options fed what a careless or malicious user would write: an address
that is not one, a retry count that never ends or is negative, an empty region. One line naming
the option and the fix, never a traceback and never a silent substitute."""

from __future__ import annotations

import httpx
import pytest

from carbonshift.cli import main
from carbonshift.providers.base import ProviderRejected
from carbonshift.providers.http import JsonApi, RetryPolicy

PASSWORD = "hunter2-proxy-pw"


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    return last


@pytest.mark.parametrize(
    "url", ["http://[::1", "ftp://example.org", "", "127.0.0.1:8080", "http://", "nonsense"]
)
def test_a_base_url_that_is_no_http_address_is_one_line(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "tok-12345678")
    last = one_line_error(
        capsys,
        ["forecast", "--provider", "electricitymaps", "--zone", "DE", "--base-url", url,
         "--retries", "0", "--no-cache"],
    )
    assert "--base-url" in last and "http" in last


def test_a_bad_base_url_with_a_password_does_not_echo_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    last = one_line_error(
        capsys,
        ["forecast", "--provider", "electricitymaps", "--zone", "DE", "--base-url",
         f"http://user:{PASSWORD}@[::1", "--no-cache"],
    )
    assert "--base-url" in last and PASSWORD not in last


def test_an_invalid_address_reaching_a_provider_is_its_failure_not_a_crash() -> None:
    """Flow configs (`base_urls`) reach the provider unchecked: a typed, scrubbed error."""
    api = JsonApi("electricitymaps", "http://[::1", retry_=RetryPolicy(attempts=1))
    with pytest.raises(ProviderRejected, match="invalid address"):
        api.get("carbon-intensity/forecast")


@pytest.mark.parametrize("retries", ["-1", "-5", "11", "99999999999999999999", "x", "1.5", ""])
def test_retries_out_of_range_is_one_line(
    retries: str, capsys: pytest.CaptureFixture[str]
) -> None:
    last = one_line_error(
        capsys, ["forecast", "--provider", "static", "--zone", "DE", "--retries", retries,
                 "--no-cache"],
    )
    assert "--retries" in last and "0 to 10" in last


def test_an_empty_region_is_named_not_read_as_no_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["forecast", "--provider", "static", "--region", "", "--no-cache"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown region ''" in err and "None" not in err


def test_httpx_rejects_the_addresses_the_cli_refuses() -> None:
    """The CLI's check and httpx agree: what it refuses, httpx cannot request."""
    with pytest.raises(httpx.InvalidURL):
        httpx.Client().get("http://[::1/x")
