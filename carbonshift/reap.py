"""The reaper: which carbonshift instances to terminate. An instance whose run has ended (or
that no server knows) has nobody left to release it; one whose heartbeat is older than
`stale_after_s` has lost its run (a killed flow process, a dead worker, a VM that never booted).
Hooks release most instances; this catches what they cannot (a worker killed with -9)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from carbonshift.compute import Compute, Instance


class RunState(StrEnum):
    ACTIVE = "active"  # scheduled, pending, running: its flow still owns the instance
    ENDED = "ended"  # completed, failed, crashed, cancelled
    # No such run on the server asked: it may live on another server (another PREFECT_API_URL,
    # an ephemeral one), so only its heartbeat can tell.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Reaped:
    instance: Instance
    reason: str
    released: bool = False


def _age(now_s: float, at_s: float | None) -> float | None:
    return None if at_s is None else max(0.0, now_s - at_s)


def to_reap(
    instances: Iterable[Instance],
    *,
    now_s: float,
    stale_after_s: float,
    run_state: Callable[[str], tuple[RunState, str] | None],
    heartbeat_at: Callable[[Instance], float | None],
) -> list[Reaped]:
    """The instances to terminate and why. `run_state(run_id)` is (state, the server's name for
    it), or None when no server can be asked (then heartbeats alone decide);
    `heartbeat_at(instance)` is the time of its last heartbeat, None if it never wrote one (then
    its launch time counts, so a VM that never booted is reaped too)."""
    found: list[Reaped] = []
    for instance in instances:
        state = run_state(instance.run_id)
        if state is not None and state[0] is RunState.ENDED:
            found.append(Reaped(instance, f"run {instance.run_id} is {state[1]}"))
            continue
        beat = heartbeat_at(instance)
        age = _age(now_s, beat if beat is not None else instance.launched_at_s)
        if age is not None and age > stale_after_s:
            what = "no heartbeat since launch" if beat is None else "last heartbeat"
            found.append(Reaped(instance, f"{what} {age / 60:.0f} min ago"))
    return found


def reap(compute: Compute, found: Iterable[Reaped]) -> list[Reaped]:
    """Terminate each (and wait); `released` is False where it was already gone."""
    return [
        Reaped(r.instance, r.reason, released=compute.release(r.instance.run_id)) for r in found
    ]
