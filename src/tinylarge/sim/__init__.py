"""The scenario engine: the main job's stages and `run(scenario) -> RunResult`."""

from tinylarge.sim.pipeline import PIPELINE, Stage, run
from tinylarge.sim.progress import Reporter, SilentReporter
from tinylarge.sim.state import ROLES, RunResult, RunState, TrainedModel

__all__ = [
    "PIPELINE",
    "ROLES",
    "Reporter",
    "RunResult",
    "RunState",
    "SilentReporter",
    "Stage",
    "TrainedModel",
    "run",
]
