"""This machine as the planned instance: state lives in a folder by run id."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from carbonshift.compute.port import Instance, LaunchRequest


class LocalCompute:
    """This machine stands in for the planned instance; state lives in a folder by run id."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _path(self, run_id: str) -> Path:
        return self.state_dir / f"{run_id}.json"

    def provision(self, request: LaunchRequest) -> Instance:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        known = self.find(request.run_id)
        if known is not None:  # a retried provision gets the same instance
            return known
        instance = Instance(
            request.run_id,
            "local",
            request.region,
            request.instance_type,
            handle="localhost",
            job=request.job,
            spot=request.spot,
            launched_at_s=time.time(),
            heartbeat_uri=request.heartbeat_uri,
        )
        self._path(request.run_id).write_text(json.dumps(asdict(instance)))
        return instance

    def release(self, run_id: str) -> bool:
        path = self._path(run_id)
        if not path.exists():
            return False
        path.unlink()
        return True

    def find(self, run_id: str) -> Instance | None:
        path = self._path(run_id)
        return Instance(**json.loads(path.read_text())) if path.exists() else None

    def interrupted(self, run_id: str) -> bool:
        # A marker file lets an operator (or a test) simulate losing the instance.
        return (self.state_dir / f"{run_id}.interrupted").exists()

    def held(self) -> list[Instance]:
        if not self.state_dir.exists():
            return []
        return [
            Instance(**json.loads(p.read_text())) for p in sorted(self.state_dir.glob("*.json"))
        ]
