"""A hostile loopback server: it echoes the caller's credentials (as sent: headers, basic auth,
the WattTime login token it handed out) inside any field of any provider's response shape, and a
check that finds every form of every secret (raw, URL-encoded, JSON- and repr-escaped, base64,
any 8-character piece) in text a human could see."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote, quote_plus

from tests.providers.shapes import em_forecast, neso_national, sdk_forecast, watttime

EM_TOKEN = "emTok/3c9d+1fZqW=Lv"
WT_USER = "alice"
WT_PASSWORD = "wt pa:ss/w\u00f6rd+\"'7KxQ"
WT_TOKEN = "wtBearer.eyJ0Mk9.x-7QpR"
SECRETS = (EM_TOKEN, WT_PASSWORD, WT_TOKEN)
BASIC = base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode()

ENV = {
    "ELECTRICITYMAPS_API_TOKEN": EM_TOKEN,
    "WATTTIME_USERNAME": WT_USER,
    "WATTTIME_PASSWORD": WT_PASSWORD,
}


def forms(secret: str) -> set[str]:
    out = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        base64.b64encode(secret.encode()).decode(),
    }
    out |= {secret[i : i + 8] for i in range(len(secret) - 7)}  # no piece of it either
    return out


ALL_FORMS = set().union(*(forms(s) for s in SECRETS)) | {BASIC, BASIC[:16], BASIC[-16:]}


def leaks(text: str) -> list[str]:
    low = text.lower()
    return sorted(f for f in ALL_FORMS if f.lower() in low)


def echo(handler: BaseHTTPRequestHandler) -> str:
    """Everything secret the client sent, in the forms it sent it and decoded."""
    sent = []
    for name in ("auth-token", "Authorization"):
        value = handler.headers.get(name)
        if value:
            sent.append(value)
            scheme, _, token = value.partition(" ")
            if scheme == "Basic":
                sent.append(base64.b64decode(token).decode("utf-8"))
            elif scheme == "Bearer":
                sent.append(token)
            else:
                sent.append(quote(value, safe=""))
    return " | ".join([*sent, handler.requestline])


@dataclass(frozen=True)
class Shape:
    name: str
    route: str  # path prefix of the forecast endpoint
    body: Callable[[datetime], Any]
    region: str
    zone: str


def _hours(now: datetime, step_min: int, n: int) -> list[tuple[datetime, float | None]]:
    return [(now + timedelta(minutes=step_min * i), 100.0 + i) for i in range(n)]


SHAPES = [
    Shape(
        "electricitymaps",
        "/carbon-intensity/forecast",
        lambda t: em_forecast(_hours(t, 60, 4)),
        "aws:eu-central-1",
        "DE",
    ),
    Shape("watttime", "/v3/forecast", lambda t: watttime(_hours(t, 5, 40)), "aws:us-west-1",
          "CAISO_NORTH"),
    Shape("ukneso", "/intensity/", lambda t: neso_national(_hours(t, 30, 8)), "aws:eu-west-2",
          "GB"),
    Shape(
        "carbon-aware-sdk",
        "/emissions/forecasts/current",
        lambda t: sdk_forecast(_hours(t, 5, 40)),
        "aws:us-west-1",
        "us-west-1",
    ),
]

POISON = object()  # stands for "the echo of what the client sent" in a body template


def variants(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(name, template) for every field of `body`: its value replaced by the echo (a container
    becomes a string: a malformed body), and, in objects, its key replaced by the echo."""
    if isinstance(body, dict):
        for key, value in body.items():
            here = (*path, key)
            yield "/".join(map(str, here)), _replace(body, key, POISON)
            yield "/".join(map(str, here)) + ":key", {
                (POISON if k == key else k): v for k, v in body.items()
            }
            for name, inner in variants(value, here):
                yield name, _replace(body, key, inner)
    elif isinstance(body, list):
        for i, value in enumerate(body[:2]):  # the first two items stand for all
            here = (*path, i)
            yield "/".join(map(str, here)), _replace(body, i, POISON)
            for name, inner in variants(value, here):
                yield name, _replace(body, i, inner)


def _replace(container: Any, key: Any, value: Any) -> Any:
    copy = dict(container) if isinstance(container, dict) else list(container)
    copy[key] = value
    return copy


def render(template: Any, poison: str) -> Any:
    if template is POISON:
        return poison
    if isinstance(template, dict):
        return {
            (poison if k is POISON else k): render(v, poison) for k, v in template.items()
        }
    if isinstance(template, list):
        return [render(v, poison) for v in template]
    return template


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
