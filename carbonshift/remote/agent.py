"""The VM side of a remote run: `python -m carbonshift.remote.agent --spec <URI of spec.json>`.

It waits for the spec (the VM may boot before the flow wrote it), opens the spec's checkpoint
store and meter, and runs the Agent (carbonshift.remote.runner) with the provider's notices.
Exit codes are the command protocol's: 0 completed, 3 stopped or interrupted, 1 failed, 2 no
usable spec.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from carbonshift.checkpoint import CheckpointManager, ObjectStore, open_store, takeover_wait_s
from carbonshift.energy import open_meter
from carbonshift.meters import close_meter
from carbonshift.remote.notice import notice_source
from carbonshift.remote.protocol import (
    STATUS,
    ProtocolError,
    RunSpec,
    State,
    Status,
    join,
    open_at,
    write,
)
from carbonshift.remote.runner import Agent
from carbonshift.run.command import EXIT_STOPPED
from carbonshift.run.supervisor import Clock, SystemClock

log = logging.getLogger("carbonshift.remote")

EXIT_FAILED, EXIT_BAD_SPEC = 1, 2
EXIT_CODES: dict[State, int] = {
    "completed": 0,
    "stopped": EXIT_STOPPED,
    "interrupted": EXIT_STOPPED,
    "failed": EXIT_FAILED,
}


def load_spec(store: ObjectStore, key: str, wait_s: float, clock: Clock) -> RunSpec:
    """The spec, waited for: the VM may boot before the flow has written it."""
    never, deadline = threading.Event(), clock.now() + wait_s
    while not store.exists(key):
        if clock.now() >= deadline:
            raise ProtocolError(f"{store.uri}/{key}: no spec after {wait_s:g} s")
        clock.wait(never, min(2.0, max(deadline - clock.now(), 0.0)))
    raw = store.get(key)
    try:
        return RunSpec.model_validate_json(raw)
    except ValueError as e:
        attempt = _attempt_of(raw)
        if attempt is not None:  # tell the flow now, rather than by a lost heartbeat
            error = f"invalid spec: {e}"
            failed = Status(attempt=attempt, state="failed", at_s=clock.now(), error=error)
            write(store, join(key.rpartition("/")[0], STATUS), failed)
        raise ProtocolError(f"{store.uri}/{key}: invalid spec: {e}") from None


def _attempt_of(raw: bytes) -> str | None:
    try:
        attempt = json.loads(raw).get("attempt")
    except (ValueError, AttributeError):
        return None
    return attempt if isinstance(attempt, str) else None


def agent_for(spec_uri: str, wait_s: float, clock: Clock | None = None) -> Agent:
    clock = clock or SystemClock()
    control, key = open_at(spec_uri)
    spec = load_spec(control, key, wait_s, clock)
    store, base = open_store(spec.checkpoint_store)
    m = spec.meter
    meter = open_meter(
        m.power_w,
        time.monotonic,
        m.label,
        prefer_rapl=m.kind in ("rapl", "auto"),
        prefer_nvml=m.kind in ("nvml", "auto"),
        pue=m.pue,
    )
    if m.kind != "estimate" and not meter.label.startswith("measured"):
        log.warning("no %s meter here: energy is the estimate (%s)", m.kind, meter.label)
    else:
        log.info("energy meter: %s", meter.label)
    return Agent(
        spec=spec,
        control=control,
        folder=key.rpartition("/")[0],
        checkpoints=CheckpointManager(
            store,
            join(base, spec.checkpoint_prefix),
            keep=spec.keep,
            # A resumed run continues its predecessor's folder, whose VM may have died holding
            # the lock: wait for its lease rather than fail.
            writer_wait_s=takeover_wait_s(store) if spec.resume_from else 0.0,
        ),
        meter=meter,
        notices=notice_source(spec.provider),
        clock=clock,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carbonshift.remote.agent")
    parser.add_argument("--spec", required=True, help="URI of the run's spec.json")
    parser.add_argument("--spec-wait-s", type=float, default=900.0, help="wait this long for it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        agent = agent_for(args.spec, args.spec_wait_s)
    except (ProtocolError, ValueError, OSError) as e:
        log.error("%s", e)
        return EXIT_BAD_SPEC
    signal.signal(signal.SIGTERM, lambda *_: agent.terminate.set())
    try:
        status = agent.run()
    finally:
        close_meter(agent.meter)  # NVML's init paired with its shutdown, polling stopped
    log.info(
        "run %s %s at step %d/%d", agent.spec.run_id, status.state, status.step, status.total_steps
    )
    return EXIT_CODES[status.state]


if __name__ == "__main__":
    sys.exit(main())
