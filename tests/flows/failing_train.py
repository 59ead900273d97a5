"""An entrypoint that fails: the run's energy is still counted and published."""

from carbonshift.training import TrainingContext, TrainingOutcome


def train(ctx: TrainingContext) -> TrainingOutcome:
    raise RuntimeError("CUDA error: an illegal memory access was encountered")
