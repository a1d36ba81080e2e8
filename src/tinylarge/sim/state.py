"""The state a run builds up stage by stage; when every stage has run it is the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from tinylarge.config.scenario import Scenario
from tinylarge.data import Partition, Task
from tinylarge.models.evaluation import Evaluation
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.training import TrainingReport

#: The two model roles of every run: on the device, and at the edge/cloud.
ROLES: tuple[str, ...] = ("tiny", "large")


@dataclass
class TrainedModel:
    """A model of the run with where it came from."""

    role: str
    model: nn.Module
    manifest: ModelManifest
    params: int
    cache_key: str
    from_cache: bool
    training: TrainingReport | None


class StageOrderError(RuntimeError):
    """A stage asked for something an earlier stage should have produced."""


@dataclass
class RunState:
    """Everything a run has produced so far. Stages read what earlier stages wrote.

    Attributes
    ----------
    logits : dict of role -> ndarray, float32, shape (n_test, num_classes)
        Test-set outputs of each model: the trace that later stages index into.
    timings_s : dict of stage name -> wall seconds
    """

    scenario: Scenario
    task: Task | None = None
    partition: Partition | None = None
    models: dict[str, TrainedModel] = field(default_factory=dict)
    logits: dict[str, np.ndarray] = field(default_factory=dict)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def require_task(self) -> Task:
        if self.task is None:
            raise StageOrderError("no task yet: the 'task' stage must run first")
        return self.task

    def require_model(self, role: str) -> TrainedModel:
        if role not in self.models:
            raise StageOrderError(f"no {role!r} model yet: its training stage must run first")
        return self.models[role]


#: What `tinylarge.sim.run` returns: the final state.
RunResult = RunState
