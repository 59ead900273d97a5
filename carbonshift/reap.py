"""The reaper: which carbonshift instances to terminate. An instance whose run has ended has
nobody left to release it; one whose heartbeat is older than
`stale_after_s` has lost its run (a killed flow process, a dead worker, a VM that never booted).
Hooks release most instances; this catches what they cannot (a worker killed with -9).

Each instance records where its VM writes its heartbeat (`Instance.heartbeat_uri`), so the
reaper reads heartbeats without knowing any run's store. An instance without one (a local run,
a URI too long for an EC2 tag, a launch by an older carbonshift), or whose heartbeat cannot be
read, is judged by its run's state alone: nothing is terminated on evidence the reaper lacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Literal

from carbonshift.checkpoint import open_store
from carbonshift.checkpoint.uri import parse_store_uri, redacted
from carbonshift.compute import Compute, Instance
from carbonshift.remote.protocol import Heartbeat, read

log = logging.getLogger("carbonshift.reap")


class RunState(StrEnum):
    ACTIVE = "active"  # scheduled, pending, running, paused: its flow still owns the instance
    ENDED = "ended"  # completed, failed, crashed, cancelled
    # No such run on the server asked: it may live on another server (another PREFECT_API_URL,
    # an ephemeral one), so only its heartbeat can tell.
    UNKNOWN = "unknown"


class Untold(Enum):
    UNTOLD = "untold"


# heartbeat_at's answer when it cannot tell (no heartbeat recorded, the store unreadable).
UNTOLD = Untold.UNTOLD
Beat = float | None | Literal[Untold.UNTOLD]


@dataclass(frozen=True)
class Reaped:
    instance: Instance
    reason: str
    released: bool = False
    error: str | None = None  # the release failed: the instance may still run

    def record(self) -> dict[str, Any]:
        """Plain values, for task results, artifacts and the CLI's JSON."""
        i = self.instance
        return {
            "region": i.region,
            "handle": i.handle,
            "run_id": i.run_id,
            "job": i.job,
            "reason": self.reason,
            "released": self.released,
            "error": self.error,
        }


def _age(now_s: float, at_s: float | None) -> float | None:
    return None if at_s is None else max(0.0, now_s - at_s)


def to_reap(
    instances: Iterable[Instance],
    *,
    now_s: float,
    stale_after_s: float,
    run_state: Callable[[str], tuple[RunState, str] | None],
    heartbeat_at: Callable[[Instance], Beat],
) -> list[Reaped]:
    """The instances to terminate and why. `run_state(run_id)` is (state, the server's name for
    it), or None when no server can be asked (then heartbeats alone decide);
    `heartbeat_at(instance)` is the time of its last heartbeat, None if it never wrote one (then
    its launch time counts, so a VM that never booted is reaped too), UNTOLD when that cannot be
    known (then only an ended run's instance is reaped)."""
    found: list[Reaped] = []
    for instance in instances:
        state = run_state(instance.run_id)
        if state is not None and state[0] is RunState.ENDED:
            found.append(Reaped(instance, f"run {instance.run_id} is {state[1]}"))
            continue
        beat = heartbeat_at(instance)
        if beat is UNTOLD:
            continue
        age = _age(now_s, beat if beat is not None else instance.launched_at_s)
        if age is not None and age > stale_after_s:
            what = "no heartbeat since launch" if beat is None else "last heartbeat"
            found.append(Reaped(instance, f"{what} {age / 60:.0f} min ago"))
    return found


def heartbeat_reader(
    *, aws_session: Any = None, gcp_credentials: Any = None, local_ok: bool = False
) -> Callable[[Instance], Beat]:
    """`heartbeat_at` for to_reap: when the heartbeat at each instance's `heartbeat_uri` was
    last written, on the STORE's clock (S3's LastModified, GCS's updated): the VM's own clock
    (`Heartbeat.at_s`) may be wrong by any amount, and the reaper must neither kill a healthy
    run whose VM clock is slow nor spare a dead one whose clock is fast. None when there is no
    heartbeat yet; UNTOLD, logged, when the instance records none or it cannot be read (a bad
    URI, no access, not a heartbeat), so one bad instance never ends the sweep and none is
    reaped for the reaper's own failure to read. A heartbeat URI in a folder on the reaper's
    machine is read only with `local_ok` (local compute, emulated instances): an instance's tag
    must not make the reaper read its own disk."""

    def heartbeat_at(instance: Instance) -> Beat:
        uri = instance.heartbeat_uri
        if not uri:
            log.info(
                "%s (run %s) records no heartbeat: judged by its run's state alone",
                instance.handle,
                instance.run_id,
            )
            return UNTOLD
        try:
            folder, _, name = uri.rstrip("/").rpartition("/")
            if not folder or not name:
                raise ValueError("it names no object in a store")
            if not local_ok and parse_store_uri(folder, "heartbeat_uri").scheme == "file":
                raise ValueError("a folder on this machine: only s3:// or gs:// heartbeats")
            # A reader's store: a folder that is not there is not made.
            store, prefix = open_store(
                folder,
                field="heartbeat_uri",
                create=False,
                aws_session=aws_session,
                gcp_credentials=gcp_credentials,
            )
            key = f"{prefix}/{name}".lstrip("/")
            beat = read(store, key, Heartbeat)  # a heartbeat, not any object
            written_s = store.modified_s(key) if beat is not None else None
        except Exception as e:  # noqa: BLE001 - logged; this instance is kept, the sweep goes on
            log.warning(
                "%s (run %s): cannot read its heartbeat at %s (%s: %s); keeping it unless its "
                "run has ended",
                instance.handle,
                instance.run_id,
                redacted(uri),
                type(e).__name__,
                e,
            )
            return UNTOLD
        return written_s

    return heartbeat_at


def reap(compute: Compute, found: Iterable[Reaped]) -> list[Reaped]:
    """Terminate each (and wait); `released` is False where it was already gone, `error` says
    why a release failed (the others go on)."""
    done = []
    for r in found:
        try:
            done.append(Reaped(r.instance, r.reason, released=compute.release(r.instance.run_id)))
        except Exception as e:  # noqa: BLE001 - reported per instance; the sweep goes on
            log.error(
                "could not terminate %s (run %s): %s", r.instance.handle, r.instance.run_id, e
            )
            done.append(Reaped(r.instance, r.reason, error=f"{type(e).__name__}: {e}"))
    return done


def markdown(records: list[dict[str, Any]], errors: dict[str, str]) -> str:
    """The reaper's artifact: what it terminated, and the regions it could not sweep."""
    lines = ["# Reaped instances", ""]
    if not records:
        lines.append("Nothing to terminate.")
    else:
        lines += [
            "| region | instance | run | job | why | terminated |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in records:
            done = "yes" if r["released"] else "already gone"
            if r["error"]:
                done = f"**failed**: {r['error']}"
            cells = (r["region"], r["handle"], r["run_id"], r["job"], r["reason"], done)
            lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    for region, error in sorted(errors.items()):
        lines += ["", f"**{_cell(region)} not swept:** {_cell(error)}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
