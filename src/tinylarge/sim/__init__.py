"""The scenario engine: the main job's stages and `run(scenario) -> RunResult`.

Each stage leaves a typed result in the `RunState` (`NetworkResult`, `PoliciesResult`,
`SecurityResult`, ...) that also produces the stage's part of ``metrics.json``.
"""

from tinylarge.sim.pipeline import PIPELINE, Stage, run
from tinylarge.sim.progress import Reporter, SilentReporter
from tinylarge.sim.stage_results import (
    AttackRow,
    Int8Checks,
    NetworkResult,
    PoliciesResult,
    QuantizationResult,
    SecurityResult,
    SplitExit,
)
from tinylarge.sim.state import ROLES, RunResult, RunState, TrainedModel

__all__ = [
    "PIPELINE",
    "ROLES",
    "AttackRow",
    "Int8Checks",
    "NetworkResult",
    "PoliciesResult",
    "QuantizationResult",
    "Reporter",
    "RunResult",
    "RunState",
    "SecurityResult",
    "SilentReporter",
    "SplitExit",
    "Stage",
    "TrainedModel",
    "run",
]
