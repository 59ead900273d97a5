"""An attacker's server echoes the caller's credentials in every field of every provider's
response, well-formed or not, and in error bodies of every status: no secret, in any form or any
piece, reaches an exception, a log line, CLI output (`--json` failures, "skipped" lines, errors)
or a cache file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from carbonshift.cli import main
from carbonshift.providers import ProviderChain, ProviderError
from carbonshift.providers.secrets import Scrubber
from carbonshift.providers.watttime import WattTime
from tests.providers.hostile import (
    BASIC,
    ENV,
    SECRETS,
    SHAPES,
    WT_PASSWORD,
    WT_TOKEN,
    WT_USER,
    Shape,
    echo,
    leaks,
    now_hour,
    render,
    variants,
)
from tests.providers.local_server import Answer, serving

SHAPE = {s.name: s for s in SHAPES}
FIELD_CASES = [
    (shape.name, name) for shape in SHAPES for name, _ in variants(shape.body(now_hour()))
]
STATUSES = (400, 401, 403, 404, 422, 429, 500, 503)
RAW_CASES = (
    [(shape.name, f"status-{code}") for shape in SHAPES for code in STATUSES]
    + [(shape.name, "not-json") for shape in SHAPES]
    + [(shape.name, "json-string") for shape in SHAPES]
)
LOGIN_CASES = ["login-extra-field", "login-no-token", "login-403", "login-token-is-echo"]


def forecast_answer(shape: Shape, case: str) -> Any:
    def answer(handler: BaseHTTPRequestHandler) -> Answer:
        poison = echo(handler)
        if case.startswith("status-"):
            # Padded so that a message cut at 200 characters would cut through a secret.
            return int(case.removeprefix("status-")), "x" * 190 + poison
        if case == "not-json":
            return 200, "y" * 72 + poison  # a cut at 80 would keep 8 characters of it
        if case == "json-string":
            return 200, {"message": poison} if shape.name != "carbon-aware-sdk" else [poison]
        if case.startswith("login-"):
            return 200, shape.body(now_hour())
        templates = dict(variants(shape.body(now_hour())))
        return 200, render(templates[case], poison)

    return answer


def login_answer(case: str) -> Any:
    def answer(handler: BaseHTTPRequestHandler) -> Answer:
        poison = echo(handler)
        if case == "login-extra-field":
            return 200, {"token": WT_TOKEN, "note": poison}
        if case == "login-no-token":
            return 200, {"tok": poison}
        if case == "login-403":
            return 403, poison
        if case == "login-token-is-echo":
            return 200, {"token": f"{WT_TOKEN} {poison}"}
        return 200, {"token": WT_TOKEN}

    return answer


def run_cli(shape: Shape, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            caplog: pytest.LogCaptureFixture, text_mode: bool = True) -> str:
    """Both output modes, with static after the provider ("skipped" lines, JSON failures) and
    without (the error line); returns everything a human could read, cache files included."""
    routes = {shape.route: forecast_answer(shape, case), "/login": login_answer(case)}
    seen = []
    modes = [
        ["--provider", f"{shape.name},static", "--region", shape.region, "--json"],
        ["--provider", shape.name, "--zone", shape.zone, "--json"],
    ]
    if text_mode:
        modes.append(["--provider", f"{shape.name},static", "--region", shape.region])
    with serving(routes) as url:
        for args in modes:
            code = main(
                ["forecast", *args, "--base-url", url, "--hours", "2", "--retries", "0",
                 "--cache-dir", str(tmp_path / "cache")]
            )
            assert code in (0, 2)
            out = capsys.readouterr()
            seen += [out.out, out.err]
    seen.append(caplog.text)
    seen += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    seen += [p.name for p in tmp_path.rglob("*")]
    return "\n".join(seen)


@pytest.fixture
def hostile_env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)


@pytest.mark.parametrize(("provider", "case"), FIELD_CASES + RAW_CASES,
                         ids=[f"{p}-{c}" for p, c in FIELD_CASES + RAW_CASES])
def test_an_echoed_secret_never_reaches_a_human(
    provider: str, case: str, hostile_env: None, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    text_mode = (provider, case) in RAW_CASES  # "skipped" lines say what JSON failures say
    text = run_cli(SHAPE[provider], case, tmp_path, capsys, caplog, text_mode)
    assert not leaks(text), case
    quoted = {"status-400", "status-403", "status-404", "status-422"}
    if (case in quoted and provider in ("electricitymaps", "watttime")) or (
        case == "not-json" and provider == "electricitymaps"
    ):
        assert "***" in text  # the echo did reach the messages, scrubbed (the others get no key)


@pytest.mark.parametrize("case", LOGIN_CASES)
def test_watttime_login_echoes_are_scrubbed(
    case: str, hostile_env: None, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    text = run_cli(SHAPE["watttime"], case, tmp_path, capsys, caplog)
    assert not leaks(text), case


def test_exceptions_from_a_provider_are_scrubbed_on_their_own() -> None:
    """Outside any chain, a provider's own errors (str and repr) are clean too."""
    def forbidden(handler: BaseHTTPRequestHandler) -> Answer:
        return 403, echo(handler)

    with serving({"/login": (200, {"token": WT_TOKEN}), "/v3/forecast": forbidden}) as url:
        wt = WattTime(WT_USER, SecretStr(WT_PASSWORD), base_url=url)
        with pytest.raises(ProviderError) as info:
            wt.forecast("CAISO_NORTH", now_hour(), now_hour().replace(hour=23))
    assert "HTTP 403" in str(info.value) and "***" in str(info.value)
    assert not leaks(str(info.value) + repr(info.value) + repr(info.value.args))
    assert info.value.__cause__ is None and info.value.__context__ is None or not leaks(
        str(info.value.__context__)
    )


def test_the_chain_scrubs_with_every_providers_secrets() -> None:
    """A provider that never saw a secret (NESO) still cannot quote it: the chain's scrubber
    knows every credential in play."""
    scrubber = Scrubber()
    scrubber.add_basic_auth(WT_USER, WT_PASSWORD)
    text = f"{WT_PASSWORD} {BASIC} {WT_PASSWORD!r} {WT_PASSWORD.upper()}"
    assert not leaks(scrubber.scrub(text))
    assert scrubber.scrub("nothing secret") == "nothing secret"
    chain = ProviderChain([WattTime(WT_USER, SecretStr(WT_PASSWORD))], scrubber=Scrubber())
    assert not leaks(chain.scrub(text))


def test_the_real_cli_has_no_secret_in_its_output(tmp_path: Path) -> None:
    """The `carbonshift` console script against the hostile server, for each provider."""
    env = {**os.environ, **ENV, "PYTHONPATH": os.getcwd()}
    exe = Path(sys.executable).with_name("carbonshift")
    for shape in SHAPES:
        routes = {shape.route: forecast_answer(shape, "status-400"),
                  "/login": login_answer("login-extra-field")}
        with serving(routes) as url:
            done = subprocess.run(
                [str(exe), "forecast", "--provider", f"{shape.name},static", "--region",
                 shape.region, "--base-url", url, "--json", "--cache-dir", str(tmp_path)],
                capture_output=True, text=True, env=env, check=False, timeout=60,
            )
        assert done.returncode == 0, done.stderr
        assert "HTTP 400" in done.stdout
        assert "***" in done.stdout or shape.name in ("ukneso", "carbon-aware-sdk")
        assert not leaks(done.stdout + done.stderr), shape.name


assert len(SECRETS) == 3
