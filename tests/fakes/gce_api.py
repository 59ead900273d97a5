"""A small local fake of the Compute Engine REST API v1, for the real `compute_v1` clients.

It serves the paths carbonshift's GCE adapter calls: instances insert/get/list/delete and
zoneOperations get/wait. Operations stay RUNNING for a scripted number of polls, then finish
and take effect. Failures are scripted per zone or per call: capacity and quota errors in an
operation's error, HTTP errors (403 permission denied, 400 unknown machine type), and
preemption (an instance turns TERMINATED or vanishes). Every request is recorded, with its
query and JSON body, so tests can check what the client really sent.

Like the real API: a repeated `requestId` returns the first request's operation and does
nothing else; inserting a name that exists is 409 alreadyExists; a zone it does not know is
404; list takes `labels.KEY = "VALUE"` and `labels.KEY:*` filters (others are 400).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BASE = "https://www.googleapis.com/compute/v1"
Json = dict[str, Any]

_INSTANCES = re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances$")
_INSTANCE = re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")
_OPERATION = re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/operations/([^/]+?)(/wait)?$")
_FILTER = re.compile(r'^labels\.([a-z0-9_-]+)\s*(?:=\s*"([^"]*)"|=\s*([^\s"]+)|:\s*\*)$')


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Json | None


@dataclass
class _HttpError:
    status: int
    reason: str
    message: str
    zone: str | None
    times: int


@dataclass
class _OpFailure:
    code: str
    message: str
    leave_instance: bool
    times: int


@dataclass
class _Operation:
    body: Json
    polls_left: int
    effect: Any  # Callable[[], Json | None]: runs once when DONE; returns an error or None


@dataclass
class FakeGce:
    """State and scripting; `start()` serves it on 127.0.0.1 at a free port."""

    zones: tuple[str, ...] = ("europe-west4-a", "europe-west4-b", "europe-west4-c")
    # Polls an operation stays RUNNING, by operationType ("insert", "delete").
    op_polls: dict[str, int] = field(default_factory=lambda: defaultdict(lambda: 1))
    calls: list[Call] = field(default_factory=list)
    instances: dict[tuple[str, str, str], Json] = field(default_factory=dict)
    _operations: dict[tuple[str, str, str], _Operation] = field(default_factory=dict)
    _by_request_id: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    _http_errors: dict[str, list[_HttpError]] = field(default_factory=lambda: defaultdict(list))
    _op_failures: dict[str, list[_OpFailure]] = field(default_factory=lambda: defaultdict(list))
    _missing_types: set[tuple[str, str]] = field(default_factory=set)
    _lost_replies: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _reclaimed_at_start: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    url: str = ""  # set by start()

    # -- serving ---------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else None
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, reply = fake.handle(self.command, url.path, query, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port!s}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- scripting -------------------------------------------------------------------------
    def http_error(
        self,
        verb: str,
        status: int,
        reason: str,
        message: str,
        *,
        zone: str | None = None,
        times: int = 1_000_000,
    ) -> None:
        """The next `times` calls of `verb` (insert, get, list, delete, operation) in `zone`
        (None: any) answer HTTP `status` with this error."""
        self._http_errors[verb].append(_HttpError(status, reason, message, zone, times))

    def deny(self, verb: str, permission: str) -> None:
        """403 as GCE says it when the caller lacks `permission`."""
        self.http_error(
            verb, 403, "forbidden", f"Required '{permission}' permission for 'projects/p'"
        )

    def fail_inserts(
        self,
        zone: str,
        code: str,
        message: str = "",
        *,
        leave_instance: bool = False,
        times: int = 1_000_000,
    ) -> None:
        """Insert operations in `zone` finish DONE with `code` in their error. With
        `leave_instance` the instance exists anyway (created, then failed), as TERMINATED."""
        text = message or f"{code} in zone '{zone}'"
        self._op_failures[zone].append(_OpFailure(code, text, leave_instance, times))

    def drop_machine_type(self, zone: str, machine_type: str) -> None:
        """`zone` does not offer `machine_type`: insert answers 400, as GCE does."""
        self._missing_types.add((zone, machine_type))

    def lose_replies(self, verb: str, times: int = 1) -> None:
        """The next `times` calls of `verb` take effect, but their reply is a 503, as when a
        reply is lost on the way back."""
        self._lost_replies[verb] += times

    def reclaim_at_start(self, zone: str) -> None:
        """Spot instances inserted in `zone` are reclaimed (TERMINATED) as their insert ends."""
        self._reclaimed_at_start.add(zone)

    def preempt(self, name: str, *, vanish: bool = False) -> None:
        """A spot reclaim: the instance turns TERMINATED (STOP) or is gone (DELETE)."""
        with self._lock:
            for key, instance in list(self.instances.items()):
                if key[2] == name:
                    if vanish:
                        del self.instances[key]
                    else:
                        instance["status"] = "TERMINATED"

    # -- reading what happened ---------------------------------------------------------------
    def inserts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith("/instances")]

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for c in self.calls if c.method == method and c.path.endswith(suffix))

    def names(self) -> list[tuple[str, str]]:
        """(zone, name) of every instance that exists, sorted."""
        with self._lock:
            return sorted((zone, name) for _, zone, name in self.instances)

    # -- the API -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: Json | None) -> tuple[
        int, Json
    ]:
        with self._lock:
            self.calls.append(Call(method, path, query, body))
            if m := _INSTANCES.match(path):
                verb = "insert" if method == "POST" else "list"
            elif m := _INSTANCE.match(path):
                verb = "delete" if method == "DELETE" else "get"
            elif m := _OPERATION.match(path):
                verb = "operation"
            else:
                return _error(404, "notFound", f"no such path {path}")
            project, zone = m.group(1), m.group(2)
            if (scripted := self._scripted_error(verb, zone)) is not None:
                return scripted
            if zone not in self.zones:
                missing = f"The resource 'projects/{project}/zones/{zone}' was not found"
                return _error(404, "notFound", missing)
            if verb == "insert":
                reply = self._insert(project, zone, query, body or {})
            elif verb == "list":
                reply = self._list(project, zone, query.get("filter", ""))
            elif verb == "get":
                reply = self._get(project, zone, m.group(3))
            elif verb == "delete":
                reply = self._delete(project, zone, m.group(3), query)
            else:
                reply = self._poll(project, zone, m.group(3))
            if self._lost_replies[verb] > 0:
                self._lost_replies[verb] -= 1
                return _error(503, "backendError", "The service is currently unavailable.")
            return reply

    def _scripted_error(self, verb: str, zone: str) -> tuple[int, Json] | None:
        for scripted in self._http_errors[verb]:
            if scripted.times > 0 and scripted.zone in (None, zone):
                scripted.times -= 1
                return _error(scripted.status, scripted.reason, scripted.message)
        return None

    def _insert(self, project: str, zone: str, query: dict[str, str], body: Json) -> tuple[
        int, Json
    ]:
        request_id = query.get("requestId")
        if request_id and request_id in self._by_request_id:
            return 200, self._operations[self._by_request_id[request_id]].body
        name = body.get("name", "")
        machine_type = str(body.get("machineType", "")).rsplit("/", 1)[-1]
        if (zone, machine_type) in self._missing_types:
            return _error(
                400,
                "invalid",
                f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'. "
                f"Machine type with name '{machine_type}' does not exist in zone '{zone}'.",
            )
        key = (project, zone, name)
        if key in self.instances:
            return _error(
                409,
                "alreadyExists",
                f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists",
            )
        instance_id = str(next(self._ids))
        self.instances[key] = {
            **body,
            "kind": "compute#instance",
            "id": instance_id,
            "status": "PROVISIONING",
            "zone": f"{BASE}/projects/{project}/zones/{zone}",
            "selfLink": f"{BASE}/projects/{project}/zones/{zone}/instances/{name}",
            "creationTimestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        failure = next((f for f in self._op_failures[zone] if f.times > 0), None)
        if failure is not None:
            failure.times -= 1

        def effect() -> Json | None:
            instance = self.instances.get(key)
            if failure is None:
                spot = body.get("scheduling", {}).get("provisioningModel") == "SPOT"
                reclaimed = spot and zone in self._reclaimed_at_start
                if instance is not None:
                    instance["status"] = "TERMINATED" if reclaimed else "RUNNING"
                return None
            if failure.leave_instance and instance is not None:
                instance["status"] = "TERMINATED"
            else:
                self.instances.pop(key, None)
            return {"errors": [{"code": failure.code, "message": failure.message}]}

        return 200, self._new_operation(
            project, zone, "insert", key, instance_id, effect, request_id
        )

    def _new_operation(
        self,
        project: str,
        zone: str,
        kind: str,
        target: tuple[str, str, str],
        target_id: str,
        effect: Any,
        request_id: str | None,
    ) -> Json:
        number = next(self._ids)
        name = f"operation-{number}-{kind}"
        body: Json = {
            "kind": "compute#operation",
            "id": str(number),
            "name": name,
            "operationType": kind,
            "status": "RUNNING",
            "zone": f"{BASE}/projects/{project}/zones/{zone}",
            "targetLink": f"{BASE}/projects/{project}/zones/{zone}/instances/{target[2]}",
            "targetId": target_id,
            "selfLink": f"{BASE}/projects/{project}/zones/{zone}/operations/{name}",
        }
        operation = _Operation(body, self.op_polls[kind], effect)
        self._operations[(project, zone, name)] = operation
        if request_id:
            self._by_request_id[request_id] = (project, zone, name)
        if operation.polls_left <= 0:
            self._finish(operation)
        return body

    def _finish(self, operation: _Operation) -> None:
        operation.body["status"] = "DONE"
        error = operation.effect()
        if error is not None:
            operation.body["error"] = error
            operation.body["httpErrorStatusCode"] = 503
            operation.body["httpErrorMessage"] = "SERVICE UNAVAILABLE"

    def _poll(self, project: str, zone: str, name: str) -> tuple[int, Json]:
        operation = self._operations.get((project, zone, name))
        if operation is None:
            return _error(404, "notFound", f"The resource 'operations/{name}' was not found")
        if operation.body["status"] != "DONE":
            operation.polls_left -= 1
            if operation.polls_left <= 0:
                self._finish(operation)
        return 200, operation.body

    def _get(self, project: str, zone: str, name: str) -> tuple[int, Json]:
        instance = self.instances.get((project, zone, name))
        if instance is None:
            return _error(
                404,
                "notFound",
                f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found",
            )
        return 200, instance

    def _list(self, project: str, zone: str, text: str) -> tuple[int, Json]:
        found = [i for (p, z, _), i in sorted(self.instances.items()) if (p, z) == (project, zone)]
        if text:
            m = _FILTER.match(text.strip())
            if m is None:
                return _error(400, "invalid", f"Invalid list filter expression '{text}'")
            key, value = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
            found = [
                i
                for i in found
                if key in i.get("labels", {}) and value in (None, i["labels"][key])
            ]
        reply: Json = {"kind": "compute#instanceList", "id": f"projects/{project}/zones/{zone}"}
        if found:  # like GCE: no `items` key when nothing matches
            reply["items"] = found
        return 200, reply

    def _delete(self, project: str, zone: str, name: str, query: dict[str, str]) -> tuple[
        int, Json
    ]:
        request_id = query.get("requestId")
        if request_id and request_id in self._by_request_id:
            return 200, self._operations[self._by_request_id[request_id]].body
        key = (project, zone, name)
        instance = self.instances.get(key)
        if instance is None:
            return self._get(project, zone, name)
        instance["status"] = "STOPPING"

        def effect() -> None:
            self.instances.pop(key, None)

        return 200, self._new_operation(
            project, zone, "delete", key, instance["id"], effect, request_id
        )


def _error(status: int, reason: str, message: str) -> tuple[int, Json]:
    return status, {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
