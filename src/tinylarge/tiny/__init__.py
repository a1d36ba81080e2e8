"""LargeML -> TinyML: distillation, int8 quantization, integer-only runtime, MCU cost model.

The curated entry points; everything else lives in the submodules.
"""

from tinylarge.tiny.distill import distill, distillation_loss
from tinylarge.tiny.footprint import Footprint, footprint
from tinylarge.tiny.graph import Op, TensorSpec, TinyModel, TinyModelError
from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile, mcu_profile
from tinylarge.tiny.model_file import load_tiny_model, save_tiny_model
from tinylarge.tiny.onnx_export import export_onnx, run_onnxruntime
from tinylarge.tiny.quantize import QuantizationError, quantize_model
from tinylarge.tiny.runtime import run

__all__ = [
    "MCU_PROFILES",
    "Footprint",
    "McuProfile",
    "Op",
    "QuantizationError",
    "TensorSpec",
    "TinyModel",
    "TinyModelError",
    "distill",
    "distillation_loss",
    "export_onnx",
    "footprint",
    "load_tiny_model",
    "mcu_profile",
    "quantize_model",
    "run",
    "run_onnxruntime",
    "save_tiny_model",
]
