"""The static default's explanation says when the job starts: at 02:00 local time, or at once
when no 02:00 fits before the deadline (it said "02:00 local time" for a 04:09 start)."""

from __future__ import annotations

from carbonshift.catalog import Catalog
from carbonshift.planner import plan_jobs
from tests.helpers import T0, job, minutes


def test_a_static_start_at_once_is_not_called_0200(catalog: Catalog) -> None:
    now = T0 + minutes(129)  # 02:09 UTC = 03:09 in Stockholm (winter): the next 02:00 is 22 h away
    spec = job("s", regions=["aws:eu-north-1"], earliest_start=now, within="5h",
               work={"duration": "4h", "instance_type": "g5.xlarge"})
    (plan,) = plan_jobs([spec], {}, now=now, catalog=catalog)
    assert plan.chosen is not None and plan.chosen.start == now
    assert plan.explanation is not None
    assert "02:00 local time fits" in plan.explanation.reason
    assert "static default 02:00 local time" not in plan.explanation.reason


def test_a_static_start_at_0200_says_so(catalog: Catalog) -> None:
    spec = job("s", regions=["aws:eu-north-1"], earliest_start=T0, within="30h",
               work={"duration": "4h", "instance_type": "g5.xlarge"})
    (plan,) = plan_jobs([spec], {}, now=T0, catalog=catalog)
    assert plan.explanation is not None
    assert "static default 02:00 local time" in plan.explanation.reason
