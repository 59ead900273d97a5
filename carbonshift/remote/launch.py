"""A remote run's compute, for the Supervisor: the launch request carries the bootstrap (with the
spec published first, so a booting VM finds it), and the run counts as interrupted when the
provider says so or when the VM does (a spot notice in its heartbeat, an interrupted status, a
lost heartbeat). The instance records where its heartbeat is, so a reaper that knows no store
finds it. One per run; everything else is the wrapped compute's."""

from __future__ import annotations

from dataclasses import replace

from carbonshift.compute import Compute, Instance, LaunchRequest
from carbonshift.remote.bootstrap import BootstrapConfig, render_bootstrap
from carbonshift.remote.observer import RemoteTrainer
from carbonshift.remote.protocol import HEARTBEAT, join


class RemoteCompute:
    def __init__(self, compute: Compute, remote: RemoteTrainer, config: BootstrapConfig) -> None:
        self.compute, self.remote, self.config = compute, remote, config
        self.name = compute.name

    def provision(self, request: LaunchRequest) -> Instance:
        if request.run_id != self.remote.spec.run_id:
            raise ValueError(
                f"run {request.run_id}: this remote compute launches run "
                f"{self.remote.spec.run_id}; make one per run"
            )
        self.remote.publish()
        script = render_bootstrap(self.config, self.remote.spec_uri, request.job, request.run_id)
        return self.compute.provision(
            replace(request, boot_script=script, heartbeat_uri=self.heartbeat_uri)
        )

    @property
    def heartbeat_uri(self) -> str:
        """What the VM rewrites while alive; recorded with the instance for the reaper."""
        return f"{self.remote.store.uri}/{join(self.remote.folder, HEARTBEAT)}"

    def release(self, run_id: str) -> bool:
        return self.compute.release(run_id)

    def find(self, run_id: str) -> Instance | None:
        return self.compute.find(run_id)

    def interrupted(self, run_id: str) -> bool:
        return self.compute.interrupted(run_id) or (
            run_id == self.remote.spec.run_id and self.remote.interrupted()
        )

    def held(self) -> list[Instance]:
        return self.compute.held()
