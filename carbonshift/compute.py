"""The compute port: provision an instance for a run, find it by the run's id, release it.

Hooks that release compute run in the worker's process, not the flow's, so instances are
found by run id in durable state, never by memory. EC2 and GCE plug in behind this interface.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Instance:
    run_id: str
    provider: str
    region: str
    instance_type: str
    handle: str


class Compute(Protocol):
    name: str

    def provision(self, run_id: str, region: str, instance_type: str) -> Instance: ...

    def release(self, run_id: str) -> bool:
        """Release what `run_id` holds; False if it held nothing (already released)."""
        ...

    def find(self, run_id: str) -> Instance | None: ...

    def interrupted(self, run_id: str) -> bool:
        """True once the provider signals a spot interruption or the instance is gone."""
        ...


class LocalCompute:
    """This machine stands in for the planned instance; state lives in a folder by run id."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _path(self, run_id: str) -> Path:
        return self.state_dir / f"{run_id}.json"

    def provision(self, run_id: str, region: str, instance_type: str) -> Instance:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        instance = Instance(run_id, "local", region, instance_type, handle="localhost")
        self._path(run_id).write_text(json.dumps(asdict(instance)))
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

    def held(self) -> list[str]:
        return (
            sorted(p.stem for p in self.state_dir.glob("*.json")) if self.state_dir.exists() else []
        )
