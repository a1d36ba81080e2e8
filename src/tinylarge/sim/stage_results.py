"""The typed results the pipeline's stages leave on `tinylarge.sim.state.RunState`, and the
parts of ``metrics.json`` they produce.

`QuantizationResult` and `Int8Checks` come from `tinylarge.sim.tiny_stages`, `NetworkResult`
from `tinylarge.sim.net_stages`, `SplitExit` from `tinylarge.sim.split_exit_stages`,
`PoliciesResult` (with `best_policy`, the one rule of "the best policy") from
`tinylarge.sim.policy_stages`, and `SecurityResult` from `tinylarge.sim.security_stages`.
They live apart from the stages so that `RunState` can hold them without importing the
stages, which import the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tinylarge.config.network_config import NetworkConfig
from tinylarge.integrate.inference.contract import Policy
from tinylarge.models.split_exit import SplitExitModel
from tinylarge.models.training import TrainingReport
from tinylarge.net import CellDevices, Coverage, EdgeServiceModel, LinkSettings, MessageResult
from tinylarge.net.shards import ShardRunner
from tinylarge.secure.fuzz import FuzzSummary
from tinylarge.sim.engine import PolicyOutcome, Requests


@dataclass(frozen=True)
class QuantizationResult:
    """How the tiny model was quantized to int8, measured on held-out training frames.

    Accuracies are fractions in [0, 1] on ``check_frames`` training frames the calibration did
    not use; the int8 ones come from the integer runtime's ``tflm`` arithmetic.

    Attributes
    ----------
    check_frames : int
    float_accuracy_check : float
        The float tiny model's accuracy.
    ptq_accuracy_check : float
        The post-training-quantized model's accuracy.
    ptq_drop_pp : float
        Float minus post-training accuracy, percentage points.
    qat : str
        The scenario's ``tiny.quantization.qat`` (``"off"``, ``"auto"`` or ``"on"``).
    qat_applied : bool
        Whether quantization-aware fine-tuning ran.
    qat_accuracy_check : float, optional
        The fine-tuned int8 model's accuracy (None when QAT did not run).
    qat_epochs : int, optional
        Epochs QAT ran (None when it did not run).
    """

    check_frames: int
    float_accuracy_check: float
    ptq_accuracy_check: float
    ptq_drop_pp: float
    qat: str
    qat_applied: bool = False
    qat_accuracy_check: float | None = None
    qat_epochs: int | None = None

    @property
    def qat_kept(self) -> bool:
        """Whether the deployed int8 model is the QAT one (more accurate than post-training)."""
        return self.qat_accuracy_check is not None and self.qat_accuracy_check > (
            self.ptq_accuracy_check
        )

    def metrics(self) -> dict[str, Any]:
        """``models.tiny_int8.quantization``: every field, QAT's only when it ran."""
        metrics: dict[str, Any] = {
            "check_frames": self.check_frames,
            "float_accuracy_check": self.float_accuracy_check,
            "ptq_accuracy_check": self.ptq_accuracy_check,
            "ptq_drop_pp": self.ptq_drop_pp,
            "qat": self.qat,
            "qat_applied": self.qat_applied,
        }
        if self.qat_applied:
            metrics["qat_accuracy_check"] = self.qat_accuracy_check
            metrics["qat_epochs"] = self.qat_epochs
        return metrics


@dataclass(frozen=True)
class Int8Checks:
    """Agreement of the integer runtime with ONNX Runtime on the test set.

    Fractions are of test frames (in [0, 1]); differences are in the output's least
    significant bits (LSB).

    Attributes
    ----------
    frames : int
    onnx_arithmetic_equal_frames_fraction : float
        Frames on which the runtime's ``onnx`` arithmetic equals ONNX Runtime bit for bit.
    onnx_arithmetic_max_abs_diff_lsb : int
    tflm_arithmetic_equal_frames_fraction : float
        Frames on which the runtime's ``tflm`` arithmetic equals ONNX Runtime bit for bit.
    tflm_arithmetic_max_abs_diff_lsb : int
    tflm_vs_onnxruntime_same_class_fraction : float
        Frames on which ``tflm`` arithmetic and ONNX Runtime predict the same class.
    int8_vs_float_same_class_fraction : float, optional
        Frames on which the int8 and the float tiny model predict the same class (None
        without the float model's logits).
    """

    frames: int
    onnx_arithmetic_equal_frames_fraction: float
    onnx_arithmetic_max_abs_diff_lsb: int
    tflm_arithmetic_equal_frames_fraction: float
    tflm_arithmetic_max_abs_diff_lsb: int
    tflm_vs_onnxruntime_same_class_fraction: float
    int8_vs_float_same_class_fraction: float | None = None

    def metrics(self) -> dict[str, Any]:
        """``models.tiny_int8.onnxruntime_check``: every field, the float comparison only when
        it was made."""
        metrics: dict[str, Any] = {
            "frames": self.frames,
            "onnx_arithmetic_equal_frames_fraction": self.onnx_arithmetic_equal_frames_fraction,
            "onnx_arithmetic_max_abs_diff_lsb": self.onnx_arithmetic_max_abs_diff_lsb,
            "tflm_arithmetic_equal_frames_fraction": self.tflm_arithmetic_equal_frames_fraction,
            "tflm_arithmetic_max_abs_diff_lsb": self.tflm_arithmetic_max_abs_diff_lsb,
            "tflm_vs_onnxruntime_same_class_fraction": (
                self.tflm_vs_onnxruntime_same_class_fraction
            ),
        }
        if self.int8_vs_float_same_class_fraction is not None:
            metrics["int8_vs_float_same_class_fraction"] = self.int8_vs_float_same_class_fraction
        return metrics


@dataclass(frozen=True)
class NetworkResult:
    """The run's cell and what its devices' messages met there.

    Attributes
    ----------
    settings : LinkSettings
        Scheduler, fading, HARQ, backhaul and radio energy of the cell.
    coverage : dict of profile name -> Coverage
        Uplink coverage of every compared radio profile.
    cells : CellDevices
        The devices attached to the chosen profile's cells (their large-scale channel).
    messages : MessageResult
        Every Poisson uplink message of every device, per message.
    edge : EdgeServiceModel
        The edge server's batch service time (measured on this machine or from the scenario).
    reply_bytes : int
        Payload of the edge's reply to each message, bytes.
    compute_energy_j_per_message : float
        Device energy of one int8 tiny-model inference on the target MCU, J (0 without one).
    sleep_s_per_message : float
        Sleep time charged between two messages of a device, s (the mean inter-message time).
    shards : int
        Shards of cells the messages were computed in (1: in this process).
    runner : ShardRunner or None
        What ran the shards (None: in this process); later stages reuse it.
    transport : dict or None
        The deployment's message transport as the policies charge it (``network.transport``:
        `tinylarge.secure.transport.transport_summary`), None when not computed.
    """

    settings: LinkSettings
    coverage: dict[str, Coverage]
    cells: CellDevices
    messages: MessageResult
    edge: EdgeServiceModel
    reply_bytes: int
    compute_energy_j_per_message: float
    sleep_s_per_message: float
    shards: int
    runner: ShardRunner | None
    transport: dict[str, Any] | None = None

    def metrics(self, config: NetworkConfig) -> dict[str, Any]:
        """``network``: coverage per profile and the uplink messages' summary.

        Parameters
        ----------
        config : NetworkConfig
            The scenario's ``[network]`` section the stage ran with.
        """
        edge = self.edge
        return {
            "profile": config.profile,
            "coverage": {n: c.summary() for n, c in self.coverage.items()},
            "uplink": {
                **self.messages.summary(),
                "compute_energy_j_per_message": self.compute_energy_j_per_message,
                "sleep_s_per_message": self.sleep_s_per_message,
            },
            "traffic": {**config.traffic.model_dump(), "reply_bytes": self.reply_bytes},
            "edge_server": {
                "setup_s": edge.setup_s,
                "per_item_s": edge.per_item_s,
                "max_batch": edge.max_batch,
                "sites": edge.sites,
                "source": edge.source,
            },
            "cells": config.n_cells,
            "ray_shards": config.ray_shards,
            **({"transport": self.transport} if self.transport is not None else {}),
        }


@dataclass(frozen=True)
class SplitExit:
    """The trained graft and what the device pays for each of its paths.

    Attributes
    ----------
    model : SplitExitModel
        The frozen large model with its bottleneck (encoder/decoder) and exit head.
    from_cache : bool
        Whether the graft was loaded from the model cache instead of trained.
    reports : dict of part -> TrainingReport
        Training of the ``exit`` head and of the ``bottleneck`` (empty when from the cache
        without a record).
    block_macs : int
        Device MACs of the large model's blocks before the cut, ``[0, split_at)``.
    exit_macs : int
        Device MACs of the exit path: the blocks before the cut plus the exit head.
    encoder_macs : int
        Device MACs of the bottleneck encoder on the cut's activation.
    code_bytes : int
        Bytes on air of the quantized code plus its header.
    """

    model: SplitExitModel
    from_cache: bool
    reports: dict[str, TrainingReport]
    block_macs: int
    exit_macs: int
    encoder_macs: int
    code_bytes: int

    @property
    def bottleneck_macs(self) -> int:
        """Device MACs of the bottleneck path alone (blocks before the cut + encoder)."""
        return self.block_macs + self.encoder_macs


@dataclass(frozen=True)
class PoliciesResult:
    """Every inference policy on the same requests over the run's network.

    Attributes
    ----------
    outcomes : dict of policy key -> PolicyOutcome
        Per-request outcome of each policy (with the security layer when it is on), in the
        order the policies were compared.
    fitted : dict of policy key -> Policy
        The policies as run (tuned ones fitted on the validation frames).
    requests : Requests
        The requests every policy answered (device, arrival time, test sample).
    validation_source : str
        Where the validation frames the tuned policies were fitted on come from.
    tuned : dict of policy key -> dict of str -> float
        Each policy's fitted scalars (attributes ending in ``_``, finite), e.g. thresholds.
    payload_accuracy : dict of way of sending -> {"accuracy", "bytes_up"}
        Accuracy of the edge's answer for each way of sending the whole frame, and its mean
        payload bytes per request (`tinylarge.sim.policy_stages.payload_accuracy`).
    unprotected : dict of policy key -> summary
        `PolicyOutcome.summary` of the reference policies run without the security layer
        (same draws); empty when messages are not protected.
    split_exit : dict
        The graft's sizes, costs and accuracies and the split points' distribution
        (`tinylarge.sim.split_exit_stages.split_exit_metrics`); empty without split or exit.
    """

    outcomes: dict[str, PolicyOutcome]
    fitted: dict[str, Policy]
    requests: Requests
    validation_source: str
    tuned: dict[str, dict[str, float]]
    payload_accuracy: dict[str, dict[str, float]]
    unprotected: dict[str, dict[str, Any]]
    split_exit: dict[str, Any]

    def summaries(self) -> dict[str, dict[str, Any]]:
        """`PolicyOutcome.summary` of every policy, by key."""
        return {key: outcome.summary() for key, outcome in self.outcomes.items()}

    def metrics(self, target_offload: float) -> dict[str, Any]:
        """``policies``: per policy its accuracy, offload fraction, latency, energy, bytes and
        deadlines with its fitted scalars; then, under keys starting with ``_``, where the
        validation frames come from, the best policy within ``target_offload`` (a fraction in
        [0, 1]), payload accuracies, unprotected references and the split/exit graft."""
        metrics: dict[str, Any] = {}
        for key, outcome in self.outcomes.items():
            metrics[key] = {**outcome.summary(), **self.tuned.get(key, {})}
        metrics["_validation"] = self.validation_source
        best = best_within_offload(metrics, target_offload)
        if best is not None:
            metrics["_best_within_target_offload"] = best
        metrics["_payload_accuracy"] = self.payload_accuracy
        if self.unprotected:
            metrics["_unprotected"] = self.unprotected
        if self.split_exit:
            metrics["_split_exit"] = self.split_exit
        return metrics


#: Policies that are bounds, not something a device can run: never the "best" policy.
BOUNDS: tuple[str, ...] = ("oracle",)


def best_policy(summaries: Mapping[str, Any], max_offload: float) -> str | None:
    """The best realisable policy offloading at most ``max_offload`` of its requests.

    The one rule of the terminal line, ``metrics.json`` and the report: the highest accuracy;
    among equally accurate policies the least device energy per request; among those the first
    in ``summaries``' order. Bounds (`BOUNDS`: the oracle knows which frames the large model
    fixes) and ``_``-prefixed extras never count; offloading exactly ``max_offload`` is within.

    Parameters
    ----------
    summaries : mapping
        Policy name -> ``accuracy``, ``offload_fraction``, ``energy_j_per_inference`` (J), ...
    max_offload : float
        Largest fraction of requests the policy may offload, 0-1.

    Returns
    -------
    str or None
        The policy's name; None when no policy is within ``max_offload``.
    """
    eligible = [
        (name, s)
        for name, s in summaries.items()
        if not name.startswith("_") and name not in BOUNDS and s["offload_fraction"] <= max_offload
    ]
    if not eligible:
        return None
    # min over (-accuracy, energy): the first of equal keys wins, so order breaks a full tie
    return min(eligible, key=lambda e: (-e[1]["accuracy"], e[1]["energy_j_per_inference"]))[0]


def best_within_offload(summaries: dict[str, Any], max_offload: float) -> dict[str, Any] | None:
    """`best_policy` against large: its accuracy and device energy as shares of ``large``'s.

    The goal it measures: at least 98 % of the large model's accuracy at <= 40 % offload, with
    less device energy per inference than ``large``. None without a ``large`` policy.
    """
    large = summaries.get("large")
    name = best_policy(summaries, max_offload)
    if large is None or name is None or not large["accuracy"]:
        return None
    best = summaries[name]
    return {
        "policy": name,
        "max_offload_fraction": max_offload,
        "offload_fraction": best["offload_fraction"],
        "accuracy": best["accuracy"],
        "accuracy_share_of_large": best["accuracy"] / large["accuracy"],
        "energy_share_of_large": best["energy_j_per_inference"] / large["energy_j_per_inference"],
    }


@dataclass(frozen=True)
class AttackRow:
    """FedAvg's final test accuracy under one attack, malicious fraction and aggregator.

    Attributes
    ----------
    attack : str
        The attack's name (``"none"`` for the clean run).
    malicious_fraction : float
        Fraction of the devices that are malicious, in [0, 1).
    aggregator : str
        The server's aggregation rule (a registered aggregator name).
    accuracy : float
        Test accuracy of the global model after the last round, in [0, 1].
    """

    attack: str
    malicious_fraction: float
    aggregator: str
    accuracy: float


@dataclass(frozen=True)
class SecurityResult:
    """Wire costs, the fuzz campaign, aggregation under attack and differential privacy.

    Attributes
    ----------
    wire : dict
        Bytes the security layer adds and what they cost a device
        (`tinylarge.sim.security_stages.wire_costs`).
    fuzz : FuzzSummary
        The mutation campaign: messages sent, accepted (must be 0) and why each was refused.
    aggregation_under_attack : list of AttackRow, optional
        Every attack x fraction x aggregator; None when FedAvg could not run on the run's
        devices (recorded in ``RunState.skipped``).
    dp : dict, optional
        DP-FedAvg's accuracy and (epsilon, delta); None when off or when FedAvg could not run.
    """

    wire: dict[str, Any]
    fuzz: FuzzSummary
    aggregation_under_attack: list[AttackRow] | None = None
    dp: dict[str, Any] | None = None

    def metrics(self) -> dict[str, Any]:
        """``security``: ``wire`` and ``fuzz``, then ``aggregation_under_attack`` and ``dp``
        when they ran."""
        metrics: dict[str, Any] = {"wire": self.wire, "fuzz": self.fuzz.to_dict()}
        if self.aggregation_under_attack is not None:
            metrics["aggregation_under_attack"] = [asdict(r) for r in self.aggregation_under_attack]
        if self.dp is not None:
            metrics["dp"] = self.dp
        return metrics
