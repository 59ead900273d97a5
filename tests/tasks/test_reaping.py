"""How the reaper reads a run's state from the Prefect server: every state type maps to active
or ended; a run the server does not know, or an id that is no flow run's, is unknown."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import State

from carbonshift.reap import RunState
from tasks.reaping import ENDED_TYPES, run_states, state_of

pytestmark = pytest.mark.integration
ACTIVE = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
          StateType.CANCELLING]


@flow(name="reap-states-subject")
def subject() -> None:
    pass


def test_every_state_type_is_active_or_ended() -> None:
    assert set(ACTIVE) | ENDED_TYPES == set(StateType)
    assert all(state_of(t) is RunState.ACTIVE for t in ACTIVE)
    assert all(state_of(t) is RunState.ENDED for t in ENDED_TYPES)
    assert state_of(None) is RunState.ACTIVE  # a run with no state yet keeps its instance


def test_run_states_asks_the_server(prefect_server: None) -> None:
    created: dict[str, StateType] = {}
    with get_client(sync_client=True) as client:
        for state_type in StateType:
            run = client.create_flow_run(subject)
            name = "Rescheduled" if state_type is StateType.COMPLETED else None
            client.set_flow_run_state(run.id, State(type=state_type, name=name), force=True)
            created[str(run.id)] = state_type
    some = next(iter(created))
    unknown, upper = str(uuid.uuid4()), some.upper()

    found = run_states.fn([*created, unknown, "local", "", upper])

    for run_id, state_type in created.items():
        expected = RunState.ENDED if state_type in ENDED_TYPES else RunState.ACTIVE
        assert found[run_id][0] is expected, (state_type, found[run_id])
    completed = next(r for r, t in created.items() if t is StateType.COMPLETED)
    assert found[completed] == (RunState.ENDED, "Rescheduled")  # the state's own name
    assert found[unknown] == found["local"] == found[""] == (RunState.UNKNOWN, "")
    assert found[upper] == found[some]  # the same run, however its id is written
    assert run_states.fn([]) == {}
