"""The large model as the edge serves it: exported to ONNX once, run by ONNX Runtime.

Measured on this project's 2-core machine (`python benchmarks/bench_deploy.py --model --preset
default`, one intra-op thread each, median of 30): the default residual network (width 24)
takes 0.20 ms for one frame in ONNX Runtime against 2.07 ms in PyTorch eager mode, 1.7 against
4.8 ms for 8 and 6.1 against 7.6 ms for 32; only at 128 is PyTorch ahead (20.3 against 22.7
ms). Outputs agree to ~1e-8. An edge answering devices sees small batches, so it serves with
ONNX Runtime; `TorchPredict` stays for comparison.

A large model that is itself an ONNX file (the ``onnx`` model of `tinylarge.models.external`)
is served as that file, copied unchanged; every other model is exported.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
import torch
from torch import nn

from tinylarge.models.external import onnx_file_of

INPUT_NAME, OUTPUT_NAME = "frames", "logits"


def export_large_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis (TorchScript-based exporter); a model
    that runs an ONNX file (`onnx_file_of`) is written as a copy of that file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    source = onnx_file_of(model)
    if source is not None:
        shutil.copyfile(source, tmp)
        tmp.replace(path)
        return path
    model = model.eval()
    example = torch.zeros(1, *input_shape)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )
    tmp.replace(path)
    return path


class OnnxPredict:
    """Logits of a batch of float frames with ONNX Runtime (thread-safe ``__call__``): the
    graph's first input and first output, whatever their names."""

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        frames = np.ascontiguousarray(x, np.float32)
        out = self.session.run([self.output_name], {self.input_name: frames})
        return np.asarray(out[0], dtype=np.float32)


class TorchPredict:
    """The same with PyTorch in eager mode (what the simulator's trace uses)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            out: npt.NDArray[np.float32] = self.model(
                torch.from_numpy(np.ascontiguousarray(x))
            ).numpy()
        return out
