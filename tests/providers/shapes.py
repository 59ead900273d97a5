"""Response bodies in each provider's recorded shape, built from (time, value) points, and a
MockTransport router that plays them back, faults included."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api"
Points = Sequence[tuple[datetime, float | None]]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def em_forecast(points: Points, zone: str = "DE") -> dict[str, Any]:
    return {
        "zone": zone,
        "updatedAt": "2023-01-01T00:00:00.000Z",
        "forecast": [{"carbonIntensity": v, "datetime": iso_ms(t)} for t, v in points],
    }


def watttime(points: Points, units: str = "lbs_co2_per_mwh", period_s: int = 300) -> dict[str, Any]:
    return {
        "data": [{"point_time": t.isoformat(), "value": v} for t, v in points],
        "meta": {
            "data_point_period_seconds": period_s,
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": units,
            "warnings": [],
        },
    }


def neso_national(points: Points, field_name: str = "forecast") -> dict[str, Any]:
    return {
        "data": [
            {
                "from": t.strftime("%Y-%m-%dT%H:%MZ"),
                "to": "",
                "intensity": {field_name: v, "index": "moderate"},
            }
            for t, v in points
        ]
    }


def sdk_forecast(points: Points, minutes: int = 5) -> list[dict[str, Any]]:
    return [
        {
            "location": "eastus",
            "windowSize": minutes,
            "optimalDataPoints": [],
            "forecastData": [
                {"location": "eastus", "timestamp": t.isoformat(), "duration": minutes, "value": v}
                for t, v in points
            ],
        }
    ]


@dataclass
class Router:
    """Routes by path suffix; each route answers its responses in turn, repeating the last.

    A response is a JSON-able body, an `httpx.Response`, or an exception to raise."""

    routes: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, path: str, *responses: Any) -> Router:
        self.routes[path] = list(responses)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for path, queue in self.routes.items():
            if request.url.path.endswith(path):
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if isinstance(answer, Exception):
                    raise answer
                if isinstance(answer, httpx.Response):
                    return answer
                return httpx.Response(200, json=answer)
        return httpx.Response(404, json={"error": f"no route for {request.url.path}"})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path.endswith(path))


@dataclass
class Sleeps:
    """An injected sleep: records the waits, waits for nothing."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment
