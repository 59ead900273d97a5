"""Remote training runs: the VM runs the agent (carbonshift.remote.agent), the flow follows it
through the object store (RemoteTrainer), the bootstrap gets the one onto the VM, and the
emulation switch (CARBONSHIFT_EMULATE_INSTANCES) stands a local process in for the VM."""

from carbonshift.remote.bootstrap import BootstrapConfig, render_bootstrap
from carbonshift.remote.emulate import SWITCH, EmulatedInstances, emulated_instances
from carbonshift.remote.launch import RemoteCompute
from carbonshift.remote.observer import HEARTBEAT_LOST, RemoteMeter, RemoteRunFailed, RemoteTrainer
from carbonshift.remote.protocol import (
    Heartbeat,
    MeterSpec,
    ProtocolError,
    RunSpec,
    Status,
    control_prefix,
    spec_for,
)

__all__ = [
    "HEARTBEAT_LOST",
    "SWITCH",
    "BootstrapConfig",
    "EmulatedInstances",
    "Heartbeat",
    "MeterSpec",
    "ProtocolError",
    "RemoteCompute",
    "RemoteMeter",
    "RemoteRunFailed",
    "RemoteTrainer",
    "RunSpec",
    "Status",
    "control_prefix",
    "emulated_instances",
    "render_bootstrap",
    "spec_for",
]
