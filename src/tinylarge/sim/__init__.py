"""The scenario engine: the main job's stages and `run(scenario) -> RunResult`.

Each stage leaves a typed result in the `RunState` (`NetworkResult`, `PoliciesResult`,
`SecurityResult`, ...) that also produces the stage's part of ``metrics.json``.
"""

from tinylarge.sim.net_result import NetworkResult
from tinylarge.sim.pipeline import PIPELINE, Stage, run
from tinylarge.sim.policy_result import PoliciesResult
from tinylarge.sim.progress import Reporter, SilentReporter
from tinylarge.sim.security_result import AttackRow, SecurityResult
from tinylarge.sim.split_exit_result import SplitExit
from tinylarge.sim.state import ROLES, RunResult, RunState, TrainedModel
from tinylarge.sim.tiny_results import Int8Checks, QuantizationResult

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
