"""`early_exit`: a multi-exit model split between device and edge (BranchyNet / SPINN style).

The device runs the first blocks of the large model and an exit head on their output
(Teerapittayanon et al., "BranchyNet", ICPR 2016). When the exit is confident it answers on the
device; otherwise the device encodes the same activation through the learned bottleneck and
sends the code, and the edge finishes the network (Laskaridis et al., "SPINN", MobiCom 2020).
The confidence threshold is given or tuned on validation data to a target offload fraction,
exactly as for `tinylarge.integrate.inference.baselines.Cascade`.

Trace keys: `EXIT_LOGITS_KEY` (the device exit's logits) and `BOTTLENECK_LOGITS_KEY` (the
edge's logits from the received code), both of shape (n, C); see
`tinylarge.models.split_exit.split_exit_logits`.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from tinylarge.integrate.inference.confidence import (
    cascade_outcome,
    check_kind,
    confidence,
    threshold_for_offload_fraction,
)
from tinylarge.integrate.inference.contract import (
    Decision,
    NotFittedError,
    Policy,
    Trace,
    check_request,
)
from tinylarge.validation import check_fraction

#: ``Trace.extra`` key of the device exit head's logits, shape (n, C).
EXIT_LOGITS_KEY = "exit_logits"
#: ``Trace.extra`` key of the edge's logits from the bottleneck code, shape (n, C).
BOTTLENECK_LOGITS_KEY = "bottleneck_logits"


class EarlyExit(Policy):
    """Answer at the device's exit head when confident, else send the bottleneck code.

    Parameters
    ----------
    kind : {"max_softmax", "margin", "entropy"}
        Confidence of the exit head's logits
        (`tinylarge.integrate.inference.confidence.confidence`).
    exit_macs : int
        Device MACs of the blocks before the exit plus the exit head, charged to every request.
    encoder_macs : int
        Device MACs of the bottleneck encoder, charged only to offloaded requests.
    code_bytes : int
        Uplink payload of an offloaded request (the quantized code and its header), bytes.
    threshold : float, optional
        Fixed confidence threshold (offload when ``confidence < threshold``).
    target_offload : float, optional
        Offload fraction in [0, 1] that `fit` tunes the threshold to. Give exactly one of
        ``threshold`` and ``target_offload``.

    Attributes
    ----------
    threshold_ : float
        Threshold in use (after `fit`, or the fixed one).
    validation_offload_fraction_, validation_accuracy_ : float
        On the validation trace, set by `fit`.
    """

    name: ClassVar[str] = "early_exit"

    def __init__(
        self,
        kind: str,
        *,
        exit_macs: int,
        encoder_macs: int,
        code_bytes: int,
        threshold: float | None = None,
        target_offload: float | None = None,
    ) -> None:
        if (threshold is None) == (target_offload is None):
            raise ValueError(
                "give exactly one of threshold and target_offload; got "
                f"threshold={threshold}, target_offload={target_offload}"
            )
        if threshold is not None and np.isnan(threshold):
            raise ValueError("threshold must be a real number, not NaN")
        if min(exit_macs, encoder_macs) < 0 or code_bytes < 1:
            raise ValueError(
                "exit_macs and encoder_macs must be >= 0 and code_bytes >= 1; got "
                f"{exit_macs}, {encoder_macs}, {code_bytes}"
            )
        self.kind = check_kind(kind)
        self.exit_macs = int(exit_macs)
        self.encoder_macs = int(encoder_macs)
        self.code_bytes = int(code_bytes)
        self.threshold = threshold
        self.target_offload = (
            None if target_offload is None else check_fraction("target_offload", target_offload)
        )
        if threshold is not None:
            self.threshold_ = float(threshold)

    def _confidence(self, trace: Trace) -> np.ndarray:
        logits = trace.require(EXIT_LOGITS_KEY, "early_exit reads the device exit's logits")
        return confidence(logits, self.kind)

    def fit(self, validation: Trace) -> Self:
        """Tune the threshold to ``target_offload`` (unless fixed); record validation metrics."""
        conf = self._confidence(validation)
        if self.target_offload is not None:
            self.threshold_ = threshold_for_offload_fraction(conf, self.target_offload)
        exit_ok = np.argmax(validation.extra[EXIT_LOGITS_KEY], axis=1) == validation.y
        edge = validation.require(BOTTLENECK_LOGITS_KEY, "early_exit's offloaded answers")
        edge_ok = np.argmax(edge, axis=1) == validation.y
        self.validation_offload_fraction_, self.validation_accuracy_ = cascade_outcome(
            conf, self.threshold_, exit_ok, edge_ok
        )
        return self

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        """Exit or offload each request (see `Policy.decide`); deterministic."""
        idx = check_request(trace, index, rng)
        if not hasattr(self, "threshold_"):
            raise NotFittedError("EarlyExit with target_offload must be fit before decide")
        exit_logits = trace.require(EXIT_LOGITS_KEY, "early_exit reads the device exit's logits")
        edge_logits = trace.require(BOTTLENECK_LOGITS_KEY, "early_exit's offloaded answers")
        offload = self._confidence(trace)[idx] < self.threshold_
        return Decision.device_or_edge(
            offload,
            np.argmax(exit_logits[idx], axis=1).astype(np.int64),
            np.argmax(edge_logits[idx], axis=1),
            bytes_per_offload=self.code_bytes,
            device_macs=self.exit_macs + np.where(offload, self.encoder_macs, 0).astype(np.int64),
        )
