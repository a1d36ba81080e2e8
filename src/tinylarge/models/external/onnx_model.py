"""`onnx`: a classifier the user exported to ONNX, run by ONNX Runtime as a `torch.nn.Module`.

The file must take one float input ``(batch, *input_shape)`` with a dynamic batch axis and give
one float output ``(batch, num_classes)`` (the task's). The model has no trainable parameters:
it is used as it is (`is_inference_only`). Its state dict holds only the SHA-256 of the file,
so a saved run refuses to load once the file has changed under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from tinylarge.models.external.sources import existing_file, sha256_of_files
from tinylarge.models.registry import register_model

if TYPE_CHECKING:
    import onnxruntime as ort  # type: ignore[import-untyped]

_FLOAT = "tensor(float)"


def _describe(arg: Any) -> str:
    """``name: tensor(float) [batch, 2, 128]`` for an ONNX Runtime input or output."""
    dims = ", ".join(str(d) if d is not None else "?" for d in arg.shape)
    return f"{arg.name!r}: {arg.type} [{dims}]"


def _check_signature(
    session: ort.InferenceSession, path: Path, input_shape: tuple[int, ...], num_classes: int
) -> None:
    """``ValueError`` unless the graph has one float input ``(batch, *input_shape)`` with a
    dynamic batch axis and one float output ``(batch, num_classes)``."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    need_in = f"one float input (batch, {', '.join(map(str, input_shape))}) with a dynamic batch"
    need_out = f"one float output (batch, {num_classes})"
    have = (
        f"inputs [{'; '.join(map(_describe, inputs))}], "
        f"outputs [{'; '.join(map(_describe, outputs))}]"
    )
    problem = ""
    if len(inputs) != 1 or len(outputs) != 1:
        problem = "needs exactly one input and one output"
    else:
        shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
        if inputs[0].type != _FLOAT or outputs[0].type != _FLOAT:
            problem = "input and output must be float32 (tensor(float))"
        elif len(shape_in) != 1 + len(input_shape) or any(
            isinstance(have_dim, int) and have_dim != want
            for have_dim, want in zip(shape_in[1:], input_shape, strict=True)
        ):
            problem = "the input does not have the task's sample shape"
        elif isinstance(shape_in[0], int):
            problem = (
                f"the batch axis is fixed at {shape_in[0]} (export with a dynamic batch, e.g. "
                "torch.onnx.export(..., dynamic_axes={'x': {0: 'batch'}}))"
            )
        elif len(shape_out) != 2 or (isinstance(shape_out[1], int) and shape_out[1] != num_classes):
            problem = "the output does not have one logit per class of the task"
    if problem:
        raise ValueError(
            f"onnx: {path}: {problem}; the file has {have}; the task needs {need_in} and {need_out}"
        )


class OnnxFileModel(nn.Module):
    """An ONNX classifier run by ONNX Runtime on CPU; float tensors in and out, no gradients.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    input_shape : tuple of int
        One sample's shape (no batch axis).
    num_classes : int
        Logits per sample.
    threads : int
        ONNX Runtime intra-op threads.
    """

    def __init__(
        self, path: Path, input_shape: tuple[int, ...], num_classes: int, *, threads: int
    ) -> None:
        super().__init__()
        self.path = path
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.threads = threads
        self.sha256 = sha256_of_files([path])
        digest = torch.tensor(list(bytes.fromhex(self.sha256)), dtype=torch.uint8)
        self.register_buffer("onnx_sha256", digest)
        self._session: ort.InferenceSession | None = None
        _check_signature(self.session, path, input_shape, num_classes)
        self.register_load_state_dict_pre_hook(_refuse_changed_file)  # type: ignore[no-untyped-call]

    @property
    def session(self) -> ort.InferenceSession:
        """The ONNX Runtime session, opened on first use (and again after unpickling)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            try:
                self._session = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # ONNX Runtime raises its own exception types
                raise ValueError(f"onnx: ONNX Runtime cannot load {self.path}: {error}") from None
        return self._session

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_session"] = None  # an InferenceSession cannot be pickled or deep-copied
        return state

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(batch, num_classes)`` of frames ``(batch, *input_shape)`` (float32)."""
        session = self.session
        frames = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        with torch.no_grad():
            out = session.run(
                [session.get_outputs()[0].name], {session.get_inputs()[0].name: frames}
            )[0]
        logits = torch.from_numpy(np.asarray(out, dtype=np.float32))
        if tuple(logits.shape) != (len(frames), self.num_classes):
            raise ValueError(
                f"onnx: {self.path} gave logits of shape {tuple(logits.shape)} for "
                f"{len(frames)} frames; the task needs ({len(frames)}, {self.num_classes})"
            )
        return logits.to(x.device)


def _refuse_changed_file(
    module: nn.Module,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load-state-dict pre-hook: the saved SHA-256 must be that of the file on disk now."""
    assert isinstance(module, OnnxFileModel)
    saved = state_dict.get(prefix + "onnx_sha256")
    if saved is not None and bytes(saved.tolist()).hex() != module.sha256:
        error_msgs.append(
            f"the ONNX file {module.path} has changed since this model was saved (SHA-256 "
            f"{module.sha256[:12]}..., saved {bytes(saved.tolist()).hex()[:12]}...)"
        )


@register_model(
    "onnx",
    "your classifier exported to ONNX, run by ONNX Runtime as it is (no training)",
)
def onnx_model(input_shape: tuple[int, ...], num_classes: int, *, path: str = "") -> OnnxFileModel:
    """Load the ONNX classifier at ``path``, checking its input and output against the task.

    Parameters
    ----------
    input_shape : tuple of int
        One sample's shape; the file's input must be ``(batch, *input_shape)``, batch dynamic.
    num_classes : int
        The file's output must be ``(batch, num_classes)``.
    path : str
        The ``.onnx`` file (required).
    """
    file = existing_file("onnx", path, "an .onnx file")
    model = OnnxFileModel(file, input_shape, num_classes, threads=torch.get_num_threads())
    probe = torch.zeros(2, *input_shape)
    try:
        model(probe)
    except ValueError:
        raise
    except Exception as error:  # ONNX Runtime raises its own exception types
        raise ValueError(
            f"onnx: {file} fails on a batch of 2 frames of shape {input_shape}: {error}"
        ) from None
    return model.eval()


__all__ = ["OnnxFileModel", "onnx_model"]
