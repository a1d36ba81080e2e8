"""The baseline and confidence-based inference policies, and the compressed-input baseline.

Each policy is one small class: the constructor stores (and validates) its arguments, `fit`
tunes on validation data where needed, `decide` maps requests to a `Decision` with array
operations only. The maths lives in pure functions: `tinylarge.integrate.inference.confidence` and
`tinylarge.integrate.inference.frame_codec`.
"""

from __future__ import annotations

import math
import weakref
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from tinylarge.integrate.inference.confidence import (
    cascade_outcome,
    check_kind,
    threshold_for_accuracy,
    threshold_for_offload_fraction,
)
from tinylarge.integrate.inference.contract import (
    FRAMES_KEY,
    Decision,
    IntArray,
    NotFittedError,
    Policy,
    Trace,
    check_index,
    check_request,
    large_logits_key,
    tiny_or_large,
)
from tinylarge.integrate.inference.frame_codec import (
    MAX_BITS,
    MAX_LEVEL,
    MIN_BITS,
    compressed_sizes,
    requantize_frames,
)
from tinylarge.validation import check_fraction, check_int

#: Frame codecs `LargeCompressed` accepts.
CODECS: tuple[str, ...] = ("zstd",)


class TinyOnly(Policy):
    """Every request is answered on the device by the int8 tiny model; nothing is sent.

    Parameters
    ----------
    tiny_macs : int
        Multiply-accumulates of one tiny-model inference (>= 0), charged to every request.
    """

    name = "tiny"

    def __init__(self, tiny_macs: int) -> None:
        self.tiny_macs = check_int("tiny_macs", tiny_macs, 0)

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        idx = check_request(trace, index, rng)
        offload = np.zeros(idx.shape, dtype=np.bool_)
        return tiny_or_large(trace, idx, offload, bytes_per_offload=0, device_macs=self.tiny_macs)


class LargeOnly(Policy):
    """Every request sends the raw int8 frame to the large model; the device computes nothing.

    Parameters
    ----------
    frame_bytes : int
        Uplink payload per request, bytes (>= 1): one byte per int8 value of the input frame,
        e.g. 2 x 128 = 256 bytes for a frame of 128 I/Q samples.

    Notes
    -----
    The tiny model does not run, so a request that is not delivered has no answer
    (``fallback_prediction`` -1).
    """

    name = "large"

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = check_int("frame_bytes", frame_bytes, 1)

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        idx = check_request(trace, index, rng)
        return Decision.all_offloaded(trace.large_prediction[idx], bytes_up=self.frame_bytes)


class Cascade(Policy):
    """Run the tiny model; send the raw frame to the large model when it is unsure.

    A request is offloaded when ``confidence(tiny_logits, kind) < threshold``. Give exactly
    one of ``threshold`` (used as is), ``target_offload`` or ``target_accuracy`` (the threshold
    is then tuned by `fit` on validation data with `threshold_for_offload_fraction` or
    `threshold_for_accuracy`; `decide` before `fit` raises `NotFittedError`).

    Parameters
    ----------
    kind : {"max_softmax", "margin", "entropy"}
        Confidence measure (`tinylarge.integrate.inference.confidence.confidence`; entropy is
        negated).
    threshold : float, optional
        Fixed threshold, not NaN (``-inf`` never offloads, ``inf`` always does).
    target_offload : float, optional
        Wanted offload fraction on the validation data, in [0, 1].
    target_accuracy : float, optional
        Wanted system accuracy on the validation data, in [0, 1]; the fewest offloads that
        reach it, or offload everything when it cannot be reached.
    frame_bytes : int
        Uplink payload of an offloaded request (the raw int8 frame), bytes (>= 1).
    tiny_macs : int
        Multiply-accumulates of one tiny-model inference (>= 0), charged to every request.

    Attributes
    ----------
    threshold_ : float
        Threshold in use, set by `fit`.
    validation_offload_fraction_, validation_accuracy_ : float
        Offload fraction and system accuracy on the validation data, set by `fit`.
    """

    name = "cascade"

    def __init__(
        self,
        kind: str,
        threshold: float | None = None,
        target_offload: float | None = None,
        target_accuracy: float | None = None,
        *,
        frame_bytes: int,
        tiny_macs: int,
    ) -> None:
        given = [v is not None for v in (threshold, target_offload, target_accuracy)]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of threshold, target_offload, target_accuracy; "
                f"got threshold={threshold}, target_offload={target_offload}, "
                f"target_accuracy={target_accuracy}"
            )
        if threshold is not None and (
            not isinstance(threshold, int | float | np.number) or math.isnan(threshold)
        ):
            raise ValueError(f"threshold must be a real number, not NaN; got {threshold!r}")
        self.kind = check_kind(kind)
        self.threshold = None if threshold is None else float(threshold)
        self.target_offload = (
            None if target_offload is None else check_fraction("target_offload", target_offload)
        )
        self.target_accuracy = (
            None if target_accuracy is None else check_fraction("target_accuracy", target_accuracy)
        )
        self.frame_bytes = check_int("frame_bytes", frame_bytes, 1)
        self.tiny_macs = check_int("tiny_macs", tiny_macs, 0)

    def fit(self, validation: Trace) -> Self:
        """Tune the threshold (unless fixed) on ``validation``; record validation metrics."""
        if not isinstance(validation, Trace):
            raise TypeError(f"validation must be a Trace; got {type(validation).__name__}")
        conf = validation.tiny_confidence(self.kind)
        tiny_ok = validation.tiny_prediction == validation.y
        large_ok = validation.large_prediction == validation.y
        if self.threshold is not None:
            self.threshold_ = self.threshold
        elif self.target_offload is not None:
            self.threshold_ = threshold_for_offload_fraction(conf, self.target_offload)
        elif self.target_accuracy is not None:
            self.threshold_ = threshold_for_accuracy(conf, tiny_ok, large_ok, self.target_accuracy)
        else:  # the constructor requires one of the three
            raise RuntimeError("Cascade has no threshold, target_offload or target_accuracy")
        self.validation_offload_fraction_, self.validation_accuracy_ = cascade_outcome(
            conf, self.threshold_, tiny_ok, large_ok
        )
        return self

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        idx = check_request(trace, index, rng)
        threshold = (
            self.threshold if self.threshold is not None else getattr(self, "threshold_", None)
        )
        if threshold is None:
            raise NotFittedError(
                "Cascade with a target_offload or target_accuracy must be fit on validation "
                "data (cascade.fit(validation_trace)) before decide"
            )
        offload = trace.tiny_confidence(self.kind)[idx] < threshold
        return tiny_or_large(
            trace, idx, offload, bytes_per_offload=self.frame_bytes, device_macs=self.tiny_macs
        )


class Oracle(Policy):
    """The bound of any offload rule: offload exactly the frames the large model fixes.

    A request is offloaded when the tiny model is wrong and the large model right; it needs
    the true label, so it is not realisable, only a reference.

    Parameters
    ----------
    frame_bytes : int
        Uplink payload of an offloaded request (the raw int8 frame), bytes (>= 1).
    tiny_macs : int
        Multiply-accumulates of one tiny-model inference (>= 0), charged to every request.
    """

    name = "oracle"

    def __init__(self, frame_bytes: int, tiny_macs: int) -> None:
        self.frame_bytes = check_int("frame_bytes", frame_bytes, 1)
        self.tiny_macs = check_int("tiny_macs", tiny_macs, 0)

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        idx = check_request(trace, index, rng)
        y = trace.y[idx]
        offload = (trace.tiny_prediction[idx] != y) & (trace.large_prediction[idx] == y)
        return tiny_or_large(
            trace, idx, offload, bytes_per_offload=self.frame_bytes, device_macs=self.tiny_macs
        )


class LargeCompressed(Policy):
    """Send every frame requantized to fewer bits per I/Q value and zstd-compressed.

    The honest baseline that split computing must beat. Each request's ``bytes_up`` is the
    actual zstd-compressed size of its frame's codes (`requantize_frames`, then
    `compressed_sizes`); every test sample is compressed once per trace and cached. The
    answer is the large model's on the degraded frame. The device runs no model (its
    requantize-and-compress work is not counted as MACs) and has no fallback answer.

    The trace must hold ``extra[FRAMES_KEY]`` (``"x_int8"``: the int8 frames, shape
    (n, *frame_shape)) and ``extra[large_logits_key(bits_per_sample)]`` (e.g.
    ``"large_logits_4b"``: the large model's logits, shape (n, C), on the frames passed
    through ``dequantize_frames(requantize_frames(x_int8, b), b)`` and mapped to its input
    scale); `decide` raises ``KeyError`` naming a missing key.

    Parameters
    ----------
    bits_per_sample : int
        Bits per I/Q value after requantization, in [1, 8] (8 = lossless, compression only).
    frame_shape : tuple of int
        Shape of one int8 frame, e.g. (2, 128) for 128 I/Q samples (256 bytes uncompressed).
    codec : {"zstd"}
        Lossless codec.
    level : int
        zstd compression level, in [1, 22].
    """

    name = "large_compressed"

    def __init__(
        self,
        bits_per_sample: int,
        frame_shape: tuple[int, ...],
        codec: str = "zstd",
        level: int = 3,
    ) -> None:
        self.bits_per_sample = check_int("bits_per_sample", bits_per_sample, MIN_BITS, MAX_BITS)
        if not isinstance(frame_shape, tuple | list) or not frame_shape:
            raise ValueError(f"frame_shape must be a non-empty tuple of ints; got {frame_shape!r}")
        self.frame_shape = tuple(check_int("frame_shape entries", d, 1) for d in frame_shape)
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}; got {codec!r}")
        self.codec = codec
        self.level = check_int("level", level, 1, MAX_LEVEL)
        # Per-trace cache of compressed sizes (-1 = not yet computed), freed with the trace.
        self._sizes: weakref.WeakKeyDictionary[Trace, IntArray] = weakref.WeakKeyDictionary()

    def bytes_up(self, trace: Trace, index: ArrayLike) -> IntArray:
        """Compressed uplink bytes of each requested frame, int64 of shape (m,); cached."""
        idx = check_index(trace, index)
        frames = trace.require(FRAMES_KEY, "large_compressed sends the int8 frames")
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(
                f"extra[{FRAMES_KEY!r}] has frame shape {frames.shape[1:]}; this policy was "
                f"built for frame_shape={self.frame_shape}"
            )
        sizes = self._sizes.get(trace)
        if sizes is None:
            sizes = self._sizes[trace] = np.full(trace.n_samples, -1, dtype=np.int64)
        todo = np.unique(idx[sizes[idx] < 0])
        if todo.size:
            codes = requantize_frames(frames[todo], self.bits_per_sample)
            sizes[todo] = compressed_sizes(codes, self.level)
        return sizes[idx]

    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        idx = check_request(trace, index, rng)
        key = large_logits_key(self.bits_per_sample)
        logits = np.asarray(trace.require(key, "large model on the requantized frames"))
        if logits.shape != trace.tiny_logits.shape:
            raise ValueError(
                f"extra[{key!r}] must have shape {trace.tiny_logits.shape}; got {logits.shape}"
            )
        return Decision.all_offloaded(
            np.argmax(logits[idx], axis=1).astype(np.int64), bytes_up=self.bytes_up(trace, idx)
        )
