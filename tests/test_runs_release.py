"""The release hook asks every region a run may have launched in, whatever fails in one."""

from __future__ import annotations

from typing import Any

import pytest

import carbonshift.runs as runs
from carbonshift.compute import ComputeError
from carbonshift.config import TrainingConfig
from carbonshift.runs import CloudAccess, ReleaseFailed, release_everywhere
from tests.run.fakes import placement, slot


class OneRegion:
    def __init__(self, region: str, holds: bool, broken: bool) -> None:
        self.region, self.holds, self.broken = region, holds, broken
        self.asked = 0

    def release(self, run_id: str) -> bool:
        self.asked += 1
        if self.broken:
            raise ComputeError(f"{self.region}: DescribeInstances: RequestLimitExceeded")
        return self.holds


def test_a_failing_region_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    where = placement().model_copy(update={"alternatives": [slot(region="aws:us-west-2")]})
    computes = {
        where.slot.region: OneRegion(where.slot.region, holds=False, broken=True),
        "aws:us-west-2": OneRegion("aws:us-west-2", holds=True, broken=False),
    }

    def compute_for(config: Any, region: str, access: Any) -> OneRegion:
        return computes[region]

    monkeypatch.setattr(runs, "compute_for", compute_for)
    cloud = TrainingConfig.model_validate({"compute": {"kind": "cloud"}})
    with pytest.raises(ReleaseFailed, match="RequestLimitExceeded") as error:
        release_everywhere(cloud, where, "run-1", CloudAccess())
    assert error.value.released == ["aws:us-west-2"]  # released where the run had failed over
    assert all(c.asked == 1 for c in computes.values())
    computes[where.slot.region].broken = False
    assert release_everywhere(cloud, where, "run-1", CloudAccess()) == ["aws:us-west-2"]
