"""The emulation switch: CARBONSHIFT_EMULATE_INSTANCES=1 makes a local process stand in for each
instance a compute launches, because emulators (moto, a fake GCE) create instances that never
run their user data.

`EmulatedInstances(compute, state_dir)` wraps any Compute. `provision` launches through the
wrapped compute (EC2 against moto, say), then runs the request's boot script with bash as a
process group of its own, with CARBONSHIFT_EMULATED=1 and CARBONSHIFT_PYTHON (the bootstrap then
installs nothing and runs the agent on this interpreter; CARBONSHIFT_REMOTE_DIR is its working
folder, CARBONSHIFT_INSTANCE_ID the instance's handle). The process is recorded in
`state_dir/<run id>.json` (pid and start time), so any process that wraps the same compute with
the same folder, a reaper included, ends it: `release` sends SIGTERM to the group (the agent
checkpoints), SIGKILL after `term_grace_s`, then releases the instance. `find` and `held` end
the stand-ins whose instance the wrapped compute no longer has (terminated by someone else).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import carbonshift
from carbonshift.compute import Compute, Instance, LaunchRequest

log = logging.getLogger("carbonshift.remote")

SWITCH = "CARBONSHIFT_EMULATE_INSTANCES"
PROC = Path("/proc")


def emulated_instances(environ: Mapping[str, str] = os.environ) -> bool:
    value = environ.get(SWITCH, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{SWITCH}={value!r}: set it to 1 (emulate instances) or 0")
    return value == "1"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) from /proc, None when no such pid."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2]), int(fields[19])


def _group_alive(pgid: int) -> bool:
    """Any live (not zombie) process in the group."""
    if not PROC.is_dir():  # no /proc: a zombie leader counts as alive until its parent waits
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None and found[1] == pgid and found[0] != "Z":
                return True
    return False


class EmulatedInstances:
    def __init__(
        self,
        compute: Compute,
        state_dir: Path,
        term_grace_s: float = 10.0,
        python: str = sys.executable,
        sleep: Callable[[float], None] = time.sleep,  # between looks at a process that ends
    ) -> None:
        if Path(getattr(compute, "state_dir", "")).absolute() == Path(state_dir).absolute():
            raise ValueError(
                f"state_dir {state_dir}: the wrapped compute keeps its own state there; give "
                "the emulated instances a folder of their own"
            )
        self.compute = compute
        self.name = compute.name
        self.state_dir = Path(state_dir)
        self.term_grace_s = term_grace_s
        self.python = python
        self._sleep = sleep
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # ours to wait for

    def _record_path(self, run_id: str) -> Path:
        return self.state_dir / f"{run_id}.json"

    def provision(self, request: LaunchRequest) -> Instance:
        instance = self.compute.provision(request)
        # As on a VM, the boot script runs once: a retried provision finds it recorded.
        if request.boot_script is not None and not self._record_path(request.run_id).exists():
            self._start(request.run_id, request.boot_script, instance)
        return instance

    def _start(self, run_id: str, script: str, instance: Instance) -> None:
        workdir = self.state_dir / run_id
        workdir.mkdir(parents=True, exist_ok=True)
        boot = workdir / "boot.sh"
        boot.write_text(script)
        # The stand-in runs the carbonshift this process runs, installed or from a source tree.
        source = str(Path(carbonshift.__file__).resolve().parents[1])
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source,
            "CARBONSHIFT_EMULATED": "1",
            "CARBONSHIFT_PYTHON": self.python,
            "CARBONSHIFT_REMOTE_DIR": str(workdir.absolute()),
            "CARBONSHIFT_INSTANCE_ID": instance.handle,
        }
        with (workdir / "console.log").open("ab") as console:
            proc = subprocess.Popen(
                ["bash", str(boot)],
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: released as one
            )
        self._children[run_id] = proc
        stat = _stat(proc.pid)
        record = {
            "run_id": run_id,
            "pid": proc.pid,
            "start_ticks": stat and stat[2],
            "handle": instance.handle,
            "region": instance.region,
            "started_at_s": time.time(),
        }
        tmp = self._record_path(run_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self._record_path(run_id))
        log.info(
            "emulated instance %s (run %s): boot script running as pid %d",
            instance.handle,
            run_id,
            proc.pid,
        )

    def release(self, run_id: str) -> bool:
        stopped = self._stop(run_id)
        return self.compute.release(run_id) or stopped

    def find(self, run_id: str) -> Instance | None:
        found = self.compute.find(run_id)
        if found is None and self._here(run_id):
            self._stop(run_id)
        return found

    def interrupted(self, run_id: str) -> bool:
        return self.compute.interrupted(run_id)

    def held(self) -> list[Instance]:
        instances = self.compute.held()
        live = {i.run_id for i in instances}
        # One state folder serves every region's wrapper: only this region's stand-ins are
        # judged by this region's instances (a sweep of us-west-2 must not end us-east-1's).
        for path in sorted(self.state_dir.glob("*.json")):
            if path.stem not in live and self._here(path.stem):
                self._stop(path.stem)
        return instances

    def _here(self, run_id: str) -> bool:
        """Whether the stand-in of `run_id` is of the wrapped compute's region (one state
        folder serves every region's wrapper: a look at us-west-2 must not end us-east-1's)."""
        region = getattr(self.compute, "region", None)
        try:
            recorded = json.loads(self._record_path(run_id).read_text()).get("region")
        except (OSError, ValueError):
            return True
        return region is None or recorded is None or recorded == region

    def _stop(self, run_id: str) -> bool:
        """End the stand-in of `run_id`, if any: SIGTERM, then SIGKILL after the grace."""
        path = self._record_path(run_id)
        child = self._children.pop(run_id, None)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            if child is not None:  # ended by another process: only ours to wait for
                child.wait(timeout=5.0)
            return False
        pid, ticks = int(record["pid"]), record.get("start_ticks")
        stat = _stat(pid)
        # A pid in use as a group id is not handed out again, so a leader with another start
        # time means our group is empty: nothing of ours to signal.
        ours = stat is None or ticks is None or stat[2] == ticks
        if ours:
            for sig, wait_s in ((signal.SIGTERM, self.term_grace_s), (signal.SIGKILL, 5.0)):
                if not self._signal(child, pid, sig, wait_s):
                    break
        if child is not None:
            child.wait(timeout=5.0)
        path.unlink(missing_ok=True)
        return True

    def _signal(
        self, child: subprocess.Popen[bytes] | None, pgid: int, sig: signal.Signals, wait_s: float
    ) -> bool:
        """Signal the group and wait for it to end; True if it is still there."""
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if child is not None:
                child.poll()  # reaps our own child, so it does not linger as a zombie
            if not _group_alive(pgid):
                return False
            self._sleep(0.05)
        return _group_alive(pgid)
