"""The state a run builds up stage by stage; when every stage has run it is the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from tinylarge.config.scenario import Scenario
from tinylarge.data import Partition, Task
from tinylarge.models.evaluation import Evaluation
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.training import TrainingReport
from tinylarge.secure.messages import reply_payload_bytes
from tinylarge.sim.foundation_results import FoundationResult
from tinylarge.sim.hybrid_lm_results import HybridLmResult, LanguageRun
from tinylarge.sim.stage_results import (
    Int8Checks,
    NetworkResult,
    PoliciesResult,
    QuantizationResult,
    SecurityResult,
    SplitExit,
)
from tinylarge.tiny.footprint import Footprint
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.measured import CCheck
from tinylarge.tiny.tflm_check import TflmCheck

#: The two model roles of every run: on the device, and at the edge/cloud.
ROLES: tuple[str, ...] = ("tiny", "large")
#: The tiny model trained from labels alone, kept beside the distilled one to measure the gain.
TINY_LABELS_ROLE = "tiny_labels"
#: The int8 tiny model executed by the integer runtime (key of its logits and evaluation).
TINY_INT8_ROLE = "tiny_int8"


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
    #: How it was fitted (method, trainable parameters, labelled frames), when that matters.
    info: dict[str, Any] = field(default_factory=dict)


def _check_path(path: str) -> str:
    section, _, part = path.partition(".")
    if not section or not part:
        raise ValueError(f"a metrics path must be '<section>.<part>', got {path!r}")
    return path


class StageOrderError(RuntimeError):
    """A stage asked for something an earlier stage should have produced."""


@dataclass
class RunState:
    """Everything a run has produced so far. Stages read what earlier stages wrote.

    Attributes
    ----------
    logits : dict of role -> ndarray, float32, shape (n_test, num_classes)
        Test-set outputs of each model: the trace that later stages index into.
    tiny_int8 : TinyModel, optional
        The quantized tiny model (after the ``quantize_tiny`` stage).
    quantization : QuantizationResult, optional
        How it was quantized: accuracy before/after on held-out training frames, QAT or not.
    int8_checks : Int8Checks, optional
        Agreement of the integer runtime with ONNX Runtime on the test set
        (``evaluate_int8`` stage).
    tflm_check : TflmCheck, optional
        The integer runtime's ``tflm`` arithmetic against TensorFlow Lite Micro's interpreter
        running the exported ``.tflite`` on every test frame (`tinylarge.tiny.tflm_check`;
        None before the stage or when TFLM refused the model, see ``skipped``).
    c_check : CCheck, optional
        The generated C on an emulated Cortex-M4: agreement and measured footprint
        (``tiny_c`` stage; None when skipped).
    footprints : dict of MCU name -> Footprint
        Flash, peak SRAM, latency and energy of ``tiny_int8`` on each MCU profile.
    network : NetworkResult, optional
        The network stage's coverage per radio profile, cell, devices and message outcomes.
    split_exit : SplitExit, optional
        The bottleneck and exit head grafted onto the large model (``split_exit`` stage).
    policies : PoliciesResult, optional
        The policies stage's per-request outcomes of every inference policy.
    colearning : dict of scheme -> summary
        Per-round records and totals of every co-learning scheme (`colearning` stage), as
        they appear under ``colearning.<scheme>`` in ``metrics.json``.
    security : SecurityResult, optional
        Wire costs, fuzz summary, aggregation under attack, DP (``security`` stage).
    foundation : FoundationResult, optional
        Label efficiency, out-of-distribution accuracy and distillation of the pretrained
        large model against a from-scratch baseline (``foundation`` stage).
    hybrid_lm : HybridLmResult, optional
        A text run's hybrid language models over the network (``hybrid_lm`` stage).
    language : LanguageRun, optional
        A text run's models and scored held-out text (``language_models`` stage).
    timings_s : dict of stage name -> wall seconds
    skipped : dict of metrics path -> reason
        Parts a stage could not do on the models it was given (``"policies.router"`` ->
        "cannot train the router: ..."); the run went on without them (see `skip`).
    warnings : dict of metrics path -> message
        Parts that ran but missed what they were tuned for (see `warn`).
    """

    scenario: Scenario
    task: Task | None = None
    partition: Partition | None = None
    models: dict[str, TrainedModel] = field(default_factory=dict)
    logits: dict[str, np.ndarray] = field(default_factory=dict)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    tiny_int8: TinyModel | None = None
    quantization: QuantizationResult | None = None
    int8_checks: Int8Checks | None = None
    tflm_check: TflmCheck | None = None
    c_check: CCheck | None = None
    footprints: dict[str, Footprint] = field(default_factory=dict)
    network: NetworkResult | None = None
    split_exit: SplitExit | None = None
    policies: PoliciesResult | None = None
    colearning: dict[str, dict[str, Any]] = field(default_factory=dict)
    security: SecurityResult | None = None
    foundation: FoundationResult | None = None
    hybrid_lm: HybridLmResult | None = None
    language: LanguageRun | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)

    def skip(self, path: str, reason: str) -> None:
        """Record that the part at metrics path ``path`` (``"<section>.<part>"``) was left out.

        For what the models make impossible (`tinylarge.errors.CannotFitError`), never for a
        bad scenario, which fails before any work.
        """
        self.skipped[_check_path(path)] = reason

    def warn(self, path: str, message: str) -> None:
        """Record that the part at ``path`` ran but missed its target (e.g. an offload
        fraction that ties in the model's confidence put out of reach)."""
        self.warnings[_check_path(path)] = message

    def require_task(self) -> Task:
        if self.task is None:
            raise StageOrderError("no task yet: the 'task' stage must run first")
        return self.task

    def require_tiny_int8(self) -> TinyModel:
        if self.tiny_int8 is None:
            raise StageOrderError("no int8 tiny model yet: 'quantize_tiny' must run first")
        return self.tiny_int8

    def require_network(self) -> NetworkResult:
        if self.network is None:
            raise StageOrderError("no network yet: the 'network' stage must run first")
        return self.network

    def require_policies(self) -> PoliciesResult:
        if self.policies is None:
            raise StageOrderError("no policy outcomes yet: the 'policies' stage must run first")
        return self.policies

    def reply_bytes(self) -> int:
        """Payload of the edge's reply to an offload, bytes: ``network.traffic.reply_bytes``, or
        when unset what the edge server sends (`tinylarge.secure.messages.reply_payload_bytes`).
        """
        configured = self.scenario.network.traffic.reply_bytes
        if configured is not None:
            return configured
        return reply_payload_bytes(self.require_task().num_classes)

    def require_model(self, role: str) -> TrainedModel:
        if role not in self.models:
            raise StageOrderError(f"no {role!r} model yet: its training stage must run first")
        return self.models[role]


#: What `tinylarge.sim.run` returns: the final state.
RunResult = RunState
