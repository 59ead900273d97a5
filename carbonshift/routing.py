"""Routing: which training deployment (and so which work pool) runs a job in a region.

A route maps a pattern over the chosen region's key (`aws:us-east-1`) to a deployment
(`flow-name/deployment-name`). Patterns are globs (`aws:*`, `gcp:europe-*`, `aws:us-east-?`);
a bare provider (`aws`) means every region of it. The most specific matching pattern wins: an
exact key first, then the pattern with the most literal characters. A region no pattern matches
goes to the default deployment.

Two patterns that match one catalog region equally (`aws:us-*` and `aws:*-1` for
`aws:us-east-1`) are refused when the routes are validated, so that which one wins never
depends on the order they were written in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

WILDCARDS = "*?["
_DEPLOYMENT = re.compile(r"^[^/\s]+/[^/\s]+$")
_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]+(:[a-z0-9*?\[\]._-]+)?$")


class RouteError(ValueError):
    """A route is malformed or ambiguous; the message names it and the fix."""


def normalise(pattern: str) -> str:
    """`aws` -> `aws:*` (every region of the provider); anything else as given."""
    return pattern if ":" in pattern else f"{pattern}:*"


def specificity(pattern: str) -> tuple[int, int]:
    """(exact?, literal characters): higher wins."""
    literal = sum(1 for ch in pattern if ch not in WILDCARDS + "]")
    return (0 if any(ch in pattern for ch in WILDCARDS) else 1, literal)


def check_deployment(value: str, field: str) -> str:
    if not _DEPLOYMENT.match(value):
        raise RouteError(
            f"{field}: {value!r} is not a deployment: give flow-name/deployment-name, "
            "e.g. train-model/gpu-aws"
        )
    return value


def check_routes(routes: Mapping[str, str], regions: Iterable[str]) -> dict[str, str]:
    """Routes with bare providers expanded; every pattern well formed, every deployment
    flow/name, each pattern matching at least one of `regions`, and no region matched by two
    patterns of the same specificity."""
    regions = sorted(regions)
    checked: dict[str, str] = {}
    for raw, deployment in routes.items():
        pattern = normalise(raw.strip().lower())
        if not _PATTERN.match(pattern):
            raise RouteError(
                f"routes: pattern {raw!r} is not provider:region: use a glob like 'aws:*', "
                "'gcp:europe-*' or an exact key like 'aws:us-east-1'"
            )
        check_deployment(deployment, f"routes[{raw!r}]")
        if pattern in checked and checked[pattern] != deployment:
            raise RouteError(
                f"routes: {raw!r} is given twice ({checked[pattern]} and {deployment}): keep one"
            )
        if not any(fnmatchcase(r, pattern) for r in regions):
            raise RouteError(
                f"routes: pattern {raw!r} matches no region in the catalog: use "
                "provider:region keys such as 'aws:us-east-1' (`carbonshift regions` lists them)"
            )
        checked[pattern] = deployment
    for region in regions:
        matching = [p for p in checked if fnmatchcase(region, p)]
        if len(matching) < 2:
            continue
        ranked = sorted(matching, key=specificity, reverse=True)
        top, runner_up = ranked[0], ranked[1]
        if specificity(top) == specificity(runner_up) and checked[top] != checked[runner_up]:
            raise RouteError(
                f"routes: {top!r} and {runner_up!r} both match {region} equally: make one "
                "more specific, or add an exact route for it"
            )
    return checked


def route(region: str, routes: Mapping[str, str], default: str) -> str:
    """The deployment that runs a job in `region` (a `provider:name` key)."""
    # Ties cannot pass check_routes for catalog regions; for any other key the pattern's text
    # decides, so the answer never depends on the map's order.
    matching = [
        (specificity(normalise(p)), p, d)
        for p, d in routes.items()
        if fnmatchcase(region, normalise(p))
    ]
    return max(matching)[2] if matching else default


def deployments(routes: Mapping[str, str], default: str) -> list[str]:
    """Every training deployment a run may be sent to: the default first."""
    return list(dict.fromkeys([default, *routes.values()]))
