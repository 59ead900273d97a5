"""Routing is pure: the most specific pattern wins whatever the map's order."""

from __future__ import annotations

import itertools

import pytest

from carbonshift.catalog import default_catalog
from carbonshift.routing import RouteError, check_routes, deployments, route, specificity

ROUTES = {
    "aws:*": "train-model/gpu-aws",
    "aws:us-*": "train-model/gpu-aws-us",
    "aws:us-east-1": "train-model/gpu-virginia",
    "gcp:*": "train-model/gpu-gcp",
}


@pytest.mark.parametrize(
    ("region", "deployment"),
    [
        ("aws:us-east-1", "train-model/gpu-virginia"),
        ("aws:us-west-2", "train-model/gpu-aws-us"),
        ("aws:eu-west-2", "train-model/gpu-aws"),
        ("gcp:europe-west4", "train-model/gpu-gcp"),
        ("azure:westeurope", "train-model/default"),
    ],
)
def test_the_most_specific_pattern_wins_in_any_order(region: str, deployment: str) -> None:
    for order in itertools.permutations(ROUTES.items()):
        assert route(region, dict(order), "train-model/default") == deployment


def test_specificity_puts_exact_keys_first_then_longer_literals() -> None:
    assert specificity("aws:us-east-1") > specificity("aws:us-east-?") > specificity("aws:*")
    assert specificity("aws:us-*") > specificity("aws:*") > specificity("*:*")


def test_checked_routes_expand_bare_providers_and_list_every_deployment() -> None:
    checked = check_routes({"gcp": "train-model/gpu-gcp"}, default_catalog().regions)
    assert checked == {"gcp:*": "train-model/gpu-gcp"}
    assert deployments(checked, "train-model/default") == [
        "train-model/default", "train-model/gpu-gcp"]


def test_equal_patterns_to_one_deployment_are_not_a_conflict() -> None:
    regions = default_catalog().regions
    same = {"aws:us-*": "train-model/a", "aws:*t-1": "train-model/a"}
    assert check_routes(same, regions) == same
    with pytest.raises(RouteError, match="both match aws:us-east-1 equally"):
        check_routes({"aws:us-*": "train-model/a", "aws:*t-1": "train-model/b"}, regions)
