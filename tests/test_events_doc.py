"""docs/events.md's automation is one Prefect accepts, and its trigger fires on the
forecast-miss event the flows emit (and on no other)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prefect.events.schemas.automations import AutomationCore
from prefect.server.events.schemas.automations import EventTrigger as ServerTrigger
from prefect.server.events.schemas.events import ReceivedEvent

from tasks.events import FORECAST_MISS, PLAN_MADE, RUN_FINISHED, RUN_RESCHEDULED, RUN_STARTED

DOC = Path(__file__).parents[1] / "docs" / "events.md"


def automation() -> AutomationCore:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return AutomationCore.model_validate(yaml.safe_load(block))


def received(name: str, job: str = "nightly") -> ReceivedEvent:
    return ReceivedEvent.model_validate({
        "occurred": "2020-01-01T00:00:00Z", "event": name,
        "resource": {"prefect.resource.id": f"carbonshift.job.{job}",
                     "prefect.resource.name": job},
        "payload": {"region": "aws:eu-west-2", "reason": "actual 150 g/kWh is +50% above"},
        "id": "00000000-0000-0000-0000-000000000001"})


def test_the_documented_automation_is_valid_and_notifies() -> None:
    auto = automation()
    assert [a.type for a in auto.actions] == ["send-notification"]
    assert "{{ event.payload.reason }}" in auto.actions[0].body  # type: ignore[attr-defined]


def test_the_documented_trigger_fires_on_a_forecast_miss_only() -> None:
    trigger = ServerTrigger.model_validate(automation().trigger.model_dump())
    assert trigger.covers(received(FORECAST_MISS))
    assert trigger.covers(received(FORECAST_MISS, job="any-other-job"))
    for other in (PLAN_MADE, RUN_STARTED, RUN_FINISHED, RUN_RESCHEDULED):
        assert not trigger.covers(received(other)), other


def test_every_event_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in (PLAN_MADE, RUN_STARTED, FORECAST_MISS, RUN_FINISHED, RUN_RESCHEDULED):
        assert f"### `{name}`" in text
