"""The reaper's rule: ended or unknown runs lose their instances; stale heartbeats (or none since
a launch long ago) too; active runs with a fresh heartbeat keep theirs."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from carbonshift.compute import Instance, LaunchRequest, LocalCompute
from carbonshift.reap import UNTOLD, Beat, Reaped, RunState, reap, to_reap

NOW = 1_800_000_000.0
STALE = 15 * 60.0


def instance(run_id: str, launched_ago_s: float = 3600.0) -> Instance:
    return Instance(run_id, "aws", "aws:us-east-1", "g5.xlarge", f"i-{run_id}", "j",
                    launched_at_s=NOW - launched_ago_s)


def decide(instances: list[Instance], states: dict[str, tuple[RunState, str] | None],
           beats: dict[str, Beat]) -> dict[str, str]:
    found = to_reap(instances, now_s=NOW, stale_after_s=STALE,
                    run_state=lambda r: states.get(r), heartbeat_at=lambda i: beats.get(i.run_id))
    return {r.instance.run_id: r.reason for r in found}


def test_ended_runs_are_reaped_whatever_their_heartbeat() -> None:
    got = decide(
        [instance("done"), instance("live")],
        {"done": (RunState.ENDED, "Crashed"), "live": (RunState.ACTIVE, "Running")},
        {"done": NOW - 1, "live": NOW - 60},
    )
    assert got == {"done": "run done is Crashed"}


def test_a_run_unknown_to_the_server_is_judged_by_its_heartbeat() -> None:
    # It may run against another server: a fresh heartbeat keeps it.
    got = decide([instance("elsewhere"), instance("lost")],
                 {"elsewhere": (RunState.UNKNOWN, ""), "lost": (RunState.UNKNOWN, "")},
                 {"elsewhere": NOW - 60, "lost": NOW - 2 * STALE})
    assert got == {"lost": "last heartbeat 30 min ago"}


def test_a_stale_heartbeat_is_reaped_even_while_the_server_says_running() -> None:
    got = decide([instance("a"), instance("b")],
                 {"a": (RunState.ACTIVE, "Running"), "b": (RunState.ACTIVE, "Running")},
                 {"a": NOW - STALE - 1, "b": NOW - STALE + 1})
    assert got == {"a": "last heartbeat 15 min ago"}


def test_no_heartbeat_counts_from_the_launch() -> None:
    got = decide([instance("booting", launched_ago_s=60), instance("never", launched_ago_s=7200)],
                 {}, {})  # no server to ask: heartbeats alone decide
    assert got == {"never": "no heartbeat since launch 120 min ago"}


@given(
    state=st.sampled_from([None, RunState.ACTIVE, RunState.ENDED, RunState.UNKNOWN]),
    beat_age=st.one_of(st.none(), st.just(UNTOLD), st.floats(0, 10 * STALE)),
    launched_ago=st.floats(0, 10 * STALE),
)
def test_reaped_exactly_when_nobody_owns_it(
    state: RunState | None, beat_age: Beat, launched_ago: float
) -> None:
    i = instance("r", launched_ago_s=launched_ago)
    beat: Beat = beat_age if beat_age is None or beat_age is UNTOLD else NOW - beat_age
    got = decide([i], {"r": None if state is None else (state, state.value)}, {"r": beat})
    if beat_age is UNTOLD:  # no evidence it is gone: only an ended run loses it
        assert ("r" in got) == (state is RunState.ENDED)
        return
    last = launched_ago if beat_age is None else beat_age
    owned = state is not RunState.ENDED and last <= STALE
    assert ("r" not in got) == owned


def test_reap_terminates_through_the_port_and_says_what_was_already_gone(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path)
    held = compute.provision(LaunchRequest("j", "r1", "aws:us-east-1", "g5.xlarge"))
    ghost = instance("r2")
    done = reap(compute, [Reaped(held, "x"), Reaped(ghost, "y")])
    assert [(r.instance.run_id, r.released) for r in done] == [("r1", True), ("r2", False)]
    assert compute.held() == []
