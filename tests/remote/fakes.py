"""Doubles for remote runs: a clock that runs a script as time passes, and fake metadata
services (EC2's IMDSv2, GCE's) on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.remote import MeterSpec, RemoteTrainer, spec_for
from carbonshift.remote.protocol import (
    HEARTBEAT,
    STATUS,
    Heartbeat,
    RunSpec,
    Status,
    control_prefix,
    join,
    write,
)
from carbonshift.training import Progress, TrainingContext

T0 = 1_700_000_000.0


class ScriptClock:
    """`wait` moves time on by its timeout (no sleeping) unless the event is set, then runs what
    the script has due by then: the VM's side of the conversation, written by the test."""

    def __init__(self, start: float = T0) -> None:
        self.t = start
        self.script: list[tuple[float, Callable[[], None]]] = []
        self.waits = 0

    def now(self) -> float:
        return self.t

    def at(self, offset_s: float, action: Callable[[], None]) -> None:
        self.script.append((T0 + offset_s, action))
        self.script.sort(key=lambda a: a[0])

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        self.waits += 1
        assert self.waits < 10_000, "the loop under test never ended"
        if event.is_set():
            return True
        self.t += timeout_s
        while self.script and self.script[0][0] <= self.t:
            self.script.pop(0)[1]()
        return event.is_set()


class Vm:
    """The VM's writes, as the agent makes them."""

    def __init__(self, store: LocalStore, prefix: str, spec: RunSpec) -> None:
        self.store, self.spec = store, spec
        self.folder = control_prefix(prefix, spec.run_id)
        self.seq = 0

    def beat(self, step: int, total: int = 100, energy_j: float = 0.0, *,
             notice: str | None = None, attempt: str | None = None, seq: int | None = None,
             at_s: float | None = None, first_step: int | None = None) -> None:
        beat = Heartbeat(attempt=attempt or self.spec.attempt, seq=self.seq if seq is None else seq,
                         at_s=at_s if at_s is not None else T0 + self.seq, step=step,
                         total_steps=total, energy_j=energy_j, meter_label="measured: test",
                         measured=True, notice=notice, first_step=first_step)
        self.seq += 1
        write(self.store, join(self.folder, HEARTBEAT), beat)

    def status(self, state: str, step: int = 0, total: int = 100, *, attempt: str | None = None,
               **fields: object) -> None:
        status = Status.model_validate({"attempt": attempt or self.spec.attempt, "state": state,
                                        "at_s": T0 + 1000, "step": step, "total_steps": total,
                                        **fields})
        write(self.store, join(self.folder, STATUS), status)


class _Imds(BaseHTTPRequestHandler):
    server: FakeMetadata

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:  # noqa: N802
        meta = self.server
        meta.requests.append(("PUT", self.path))
        if self.path != "/latest/api/token" or not self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400)
        meta.token_serial += 1
        self._send(200, f"token-{meta.token_serial}")

    def do_GET(self) -> None:  # noqa: N802
        meta = self.server
        meta.requests.append(("GET", self.path))
        if self.path == "/computeMetadata/v1/instance/preempted":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self._send(403)
            return self._send(200, "TRUE" if meta.preempted else "FALSE")
        if self.path != "/latest/meta-data/spot/instance-action":
            return self._send(404)
        if self.headers.get("X-aws-ec2-metadata-token") != f"token-{meta.token_serial}":
            return self._send(401)  # IMDSv2 only, and only the newest token
        if meta.action is None:
            return self._send(404)
        self._send(200, json.dumps(meta.action))


class FakeMetadata(ThreadingHTTPServer):
    """EC2's IMDSv2 (token, spot/instance-action) and GCE's instance/preempted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Imds)
        self.action: dict[str, str] | None = None
        self.preempted = False
        self.token_serial = 0
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def fake_metadata() -> Iterator[FakeMetadata]:
    server = FakeMetadata()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


TINY = "carbonshift.examples.tiny_train:train"


def remote_run(store: LocalStore, prefix: str, run_id: str, steps: int, provider: str = "local",
               resume_from: str | None = None,
               on_progress: Callable[[Progress], None] | None = None,
               ) -> tuple[RemoteTrainer, TrainingContext]:
    """A remote tiny_train run on real time with short intervals: the flow's trainer and the
    context the supervisor would hand it."""
    ctx = TrainingContext(CheckpointManager(store, prefix), checkpoint_every_s=0.1,
                          options={"steps": str(steps)}, resume_from=resume_from,
                          on_progress=on_progress)
    spec = spec_for(ctx, job="tiny job", run_id=run_id, provider=provider,  # type: ignore[arg-type]
                    entrypoint=TINY, meter=MeterSpec(power_w=100.0, label="test 100 W"),
                    heartbeat_every_s=0.05, poll_every_s=0.02)
    remote = RemoteTrainer(store, prefix, spec, heartbeat_timeout_s=30.0, start_grace_s=90.0,
                           stop_wait_s=60.0, poll_s=0.05)
    return remote, ctx


def group_alive(pgid: int) -> bool:
    """A live (not zombie) process in the group, from /proc."""
    from carbonshift.remote.emulate import _group_alive
    return _group_alive(pgid)
