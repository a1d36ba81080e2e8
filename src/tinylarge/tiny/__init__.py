"""LargeML -> TinyML: distillation, int8 quantization, integer-only runtime, MCU cost model.

The curated entry points, imported lazily (PEP 562) so that importing one light submodule
(e.g. `tinylarge.tiny.mcu` for the CLI's help) does not load torch and ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinylarge.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from tinylarge.tiny.distill import distill, distillation_loss
    from tinylarge.tiny.footprint import Footprint, footprint
    from tinylarge.tiny.graph import Op, TensorSpec, TinyModel, TinyModelError
    from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile, mcu_profile
    from tinylarge.tiny.model_file import load_tiny_model, save_tiny_model
    from tinylarge.tiny.onnx_export import export_onnx, run_onnxruntime
    from tinylarge.tiny.quantize import QuantizationError, quantize_model
    from tinylarge.tiny.runtime import run

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "distill": "distill",
    "distillation_loss": "distill",
    "Footprint": "footprint",
    "footprint": "footprint",
    "Op": "graph",
    "TensorSpec": "graph",
    "TinyModel": "graph",
    "TinyModelError": "graph",
    "MCU_PROFILES": "mcu",
    "McuProfile": "mcu",
    "mcu_profile": "mcu",
    "load_tiny_model": "model_file",
    "save_tiny_model": "model_file",
    "export_onnx": "onnx_export",
    "run_onnxruntime": "onnx_export",
    "QuantizationError": "quantize",
    "quantize_model": "quantize",
    "run": "runtime",
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
