"""A training run: its placement, trainer, grid and supervisor (no orchestrator in here)."""

from carbonshift.run.command import EXIT_STOPPED, Trainer, load_entrypoint, run_command, trainer_for
from carbonshift.run.context import checkpoints_for
from carbonshift.run.failover import NoCapacity, with_failover
from carbonshift.run.grid import ActualIntensity, ChainActuals, planned_series
from carbonshift.run.placement import NotRunnable, Placement, placement_of, run_meter
from carbonshift.run.rest import NothingLeft, remaining_job
from carbonshift.run.supervisor import Clock, RunReport, Supervisor, SystemClock

__all__ = [
    "EXIT_STOPPED",
    "ActualIntensity",
    "ChainActuals",
    "Clock",
    "NoCapacity",
    "NotRunnable",
    "NothingLeft",
    "Placement",
    "RunReport",
    "Supervisor",
    "SystemClock",
    "Trainer",
    "checkpoints_for",
    "load_entrypoint",
    "placement_of",
    "planned_series",
    "remaining_job",
    "run_command",
    "run_meter",
    "trainer_for",
    "with_failover",
]
