"""What the quantize and int8 stages (`tinylarge.sim.tiny_stages`) measured, and its metrics.

Kept apart from the stages so that `tinylarge.sim.state.RunState` can hold them without
importing the stages (which import the state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
