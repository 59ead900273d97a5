"""deployments/zombie-runs.yaml is what users give `prefect automation create --from-file`, and
what crash_zombie_runs creates: it must validate as Prefect's automation model and mean what it
says (the scale tier's worker-killed test runs it against a real server)."""

from __future__ import annotations

from datetime import timedelta

import yaml

from flows.local_stack import ZOMBIE_AUTOMATION, ZOMBIE_AUTOMATION_FILE, zombie_automation


def test_the_file_is_one_automation_that_crashes_runs_whose_heartbeat_stopped() -> None:
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    data = yaml.safe_load(ZOMBIE_AUTOMATION_FILE.read_text())
    (raw,) = data["automations"]  # the CLI's "automations" list
    automation = AutomationCore.model_validate(raw)  # as `prefect automation create` does
    assert automation.name == ZOMBIE_AUTOMATION
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture == Posture.Proactive
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.heartbeat" in trigger.expect
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert trigger.for_each == {"prefect.resource.id"}  # one clock per flow run, not one for all
    # Longer than Prefect's 30 s heartbeat floor, with room for a busy machine.
    assert trigger.within == timedelta(seconds=90)
    (action,) = automation.actions
    assert isinstance(action, ChangeFlowRunState) and action.state == StateType.CRASHED


def test_the_window_can_be_shortened_for_a_test_server() -> None:
    automation = zombie_automation(40)
    assert automation.trigger.within == timedelta(seconds=40)
    assert "40 s" in automation.actions[0].message
    assert zombie_automation().trigger.within == timedelta(seconds=90)
