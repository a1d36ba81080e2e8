"""Run a model through TensorFlow Lite Micro itself and compare it with the integer runtime.

TFLM's interpreter and reference kernels come from the ``tflite-micro`` package (Python
bindings of the C++ library; no TensorFlow): it is the reference for the runtime's ``tflm``
arithmetic, and the only one: LiteRT's (the ``ai-edge-litert`` package) kernels differ from
TFLM's on the same file, by 1 LSB for its reference FULLY_CONNECTED (one rounding step where
TFLM has two) and up to 2 LSB for its optimized and XNNPACK kernels, as measured on this
project's models. About 50 us per frame on this project's machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.tflite_export import from_nhwc, to_nhwc, to_tflite


class TflmInterpreter:
    """TFLM's interpreter on one ``.tflite`` file, fed channel-major int8 frames."""

    def __init__(self, tflite: bytes, output_shape: tuple[int, ...]) -> None:
        from tflite_micro import runtime  # the C++ library loads on first use only

        try:
            self._interpreter = runtime.Interpreter.from_bytes(tflite)
        except Exception as error:  # RuntimeError from TFLM (reason on stderr), or the
            # bindings' own parse errors (struct.error, ...) on bytes that are no model
            raise ValueError(
                f"TFLM refused the model: {type(error).__name__}: {error} (TFLM prints its "
                "reason on stderr)"
            ) from None
        self.output_shape = output_shape

    def run(self, x: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
        """int8 outputs ``(N, *output_shape)`` of int8 frames ``(N, *input_shape)``."""
        frames = to_nhwc(np.asarray(x, np.int8))
        out = np.empty((len(frames), int(np.prod(self.output_shape))), np.int8)
        for i, frame in enumerate(frames):
            self._interpreter.set_input(frame[None], 0)
            self._interpreter.invoke()
            out[i] = self._interpreter.get_output(0).reshape(-1)
        result: npt.NDArray[np.int8] = from_nhwc(out, self.output_shape)
        return result


def tflm_run(model: TinyModel, x: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """``model`` exported to ``.tflite`` and run by TFLM on int8 frames ``x``."""
    return TflmInterpreter(to_tflite(model), model.output_spec.shape).run(x)


@dataclass(frozen=True)
class TflmCheck:
    """The integer runtime's ``tflm`` arithmetic against TFLM on the same frames
    (``models.tiny_int8.tflm_check`` in ``metrics.json``; goal: 0 mismatches)."""

    frames: int
    elements: int
    mismatches: int
    max_abs_lsb: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tflm_check(model: TinyModel, x: npt.NDArray[np.int8]) -> TflmCheck:
    """Run ``x`` through the runtime (``tflm``) and through TFLM; count differing elements."""
    from tinylarge.tiny.runtime import run

    ours = run(model, x, arithmetic="tflm").astype(np.int16)
    theirs = tflm_run(model, x).astype(np.int16)
    diff = np.abs(ours - theirs)
    return TflmCheck(
        frames=len(x),
        elements=int(diff.size),
        mismatches=int(np.count_nonzero(diff)),
        max_abs_lsb=int(diff.max(initial=0)),
    )
