"""The contract shared by every inference policy: `Trace` in, `Decision` out.

The simulator is trace-driven: every model output is computed once per test sample and
stored in a `Trace`; requests from any number of devices are integer indices into it. A
`Policy` maps a batch of requests (``index``, shape (m,)) to a `Decision` of arrays over
those requests. No Python object per request or per device is ever created.
"""

from __future__ import annotations

import abc
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinylarge.integrate.inference.confidence import confidence

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: ``Trace.extra`` key of the int8 input frames, shape (n, *frame_shape), int8.
FRAMES_KEY = "x_int8"


def large_logits_key(bits: int) -> str:
    """``Trace.extra`` key of the large model's logits on frames requantized to ``bits`` bits."""
    return f"large_logits_{bits}b"


class NotFittedError(RuntimeError):
    """A policy that tunes itself on validation data was asked to decide before `Policy.fit`."""


def _logits(name: str, value: ArrayLike) -> FloatArray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} must have shape (n, C) with C >= 2 classes; got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be real numbers; got dtype {arr.dtype}")
    out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return out


def _ints(name: str, value: ArrayLike, *, low: int) -> IntArray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, shape (m,); got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size and out.min() < low:
        raise ValueError(f"{name} must be >= {low}; got minimum {out.min()}")
    return out


def _read_only(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr`` (the caller's array stays writeable)."""
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Trace:
    """Model outputs computed once per test sample; requests index into them.

    Attributes
    ----------
    tiny_logits : ndarray of float32, shape (n, C)
        Dequantized logits of the int8 tiny model (as run by the integer runtime).
    large_logits : ndarray of float32, shape (n, C)
        Logits of the large model on the full-precision frame.
    y : ndarray of int64, shape (n,)
        True class of each sample, in ``[0, C)``.
    snr_db : ndarray of float64, shape (n,), or None
        Per-sample SNR, dB, when the task has one.
    extra : mapping of str to ndarray, each of shape (n, ...)
        Policy-specific per-sample outputs, e.g. `FRAMES_KEY` (the int8 frames),
        ``large_logits_key(bits)`` (large model on requantized frames), split activations or
        exit logits. First axis must be n.

    Inputs are converted to the dtypes above (integer-valued labels only) and validated: any
    shape mismatch, non-finite logit or label outside ``[0, C)`` raises ``ValueError``. The
    trace is immutable: arrays are stored as read-only views and ``extra`` as a read-only
    mapping, so derived per-sample values (predictions, `tiny_confidence`) are cached safely.
    """

    tiny_logits: FloatArray
    large_logits: FloatArray
    y: IntArray
    snr_db: NDArray[np.float64] | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    _confidence: dict[str, NDArray[np.float64]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        tiny = _logits("tiny_logits", self.tiny_logits)
        large = _logits("large_logits", self.large_logits)
        if large.shape != tiny.shape:
            raise ValueError(
                f"large_logits shape {large.shape} must equal tiny_logits shape {tiny.shape}"
            )
        n, n_classes = tiny.shape
        y = _ints("y", self.y, low=0)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) to match the logits; got {y.shape}")
        if y.size and y.max() >= n_classes:
            raise ValueError(f"y must be in [0, {n_classes}); got maximum {y.max()}")
        snr = None
        if self.snr_db is not None:
            snr = np.asarray(self.snr_db, dtype=np.float64)
            if snr.shape != (n,):
                raise ValueError(f"snr_db must have shape ({n},) or be None; got {snr.shape}")
        extra: dict[str, np.ndarray] = {}
        for key, value in dict(self.extra).items():
            arr = np.asarray(value)
            if not isinstance(key, str) or arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(
                    f"extra[{key!r}] must be keyed by a str and have n = {n} rows; "
                    f"got shape {arr.shape}"
                )
            extra[key] = arr
        for name, value in (("tiny_logits", tiny), ("large_logits", large), ("y", y)):
            object.__setattr__(self, name, _read_only(value))
        object.__setattr__(self, "snr_db", None if snr is None else _read_only(snr))
        extra = {key: _read_only(value) for key, value in extra.items()}
        object.__setattr__(self, "extra", types.MappingProxyType(extra))

    @property
    def n_samples(self) -> int:
        """Number of samples n."""
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return int(self.tiny_logits.shape[1])

    @cached_property
    def tiny_prediction(self) -> IntArray:
        """Tiny model's class per sample, int64 (n,) (argmax; first index on ties)."""
        out: IntArray = np.argmax(self.tiny_logits, axis=1).astype(np.int64)
        return out

    @cached_property
    def large_prediction(self) -> IntArray:
        """Large model's class per sample, int64 (n,) (argmax; first index on ties)."""
        out: IntArray = np.argmax(self.large_logits, axis=1).astype(np.int64)
        return out

    def tiny_confidence(self, kind: str) -> NDArray[np.float64]:
        """`tinylarge.integrate.inference.confidence.confidence` of the tiny logits, float64 (n,);
        cached.

        Computed once per kind and trace, so that requests only gather from it.
        """
        if kind not in self._confidence:
            self._confidence[kind] = confidence(self.tiny_logits, kind)
        return self._confidence[kind]

    def require(self, key: str, why: str) -> np.ndarray:
        """``extra[key]``, or a ``KeyError`` that says who needs it and what is present."""
        if key not in self.extra:
            raise KeyError(
                f"Trace.extra[{key!r}] is required ({why}); present keys: {sorted(self.extra)}"
            )
        return self.extra[key]


@dataclass(frozen=True, eq=False)
class Decision:
    """What a policy decided for m requests; every attribute is an array of shape (m,).

    Attributes
    ----------
    offload : ndarray of bool
        True when the request is sent over the uplink to the large model.
    prediction : ndarray of int64
        The class the system answers with, assuming the offload succeeds. For a request kept on
        the device it is the device's answer, i.e. equal to ``fallback_prediction`` (-1 = none).
    bytes_up : ndarray of int64
        Uplink payload per request, bytes; 0 when not offloaded.
    device_macs : ndarray of int64
        Multiply-accumulates run on the device for the request (tiny model, router, first
        split layers, ...); 0 when the device computes nothing.
    fallback_prediction : ndarray of int64
        What the device answers when the offload fails or is dropped: the on-device answer if
        the device ran a model, else -1 (no answer, counted as wrong).

    Validated on construction: same length, ``bytes_up >= 0`` and 0 where not offloaded,
    ``device_macs >= 0``, predictions ``>= -1`` and ``prediction == fallback_prediction`` where
    not offloaded; a violation raises ``ValueError``.
    """

    offload: BoolArray
    prediction: IntArray
    bytes_up: IntArray
    device_macs: IntArray
    fallback_prediction: IntArray

    def __post_init__(self) -> None:
        offload = np.asarray(self.offload)
        if offload.ndim != 1 or offload.dtype != np.bool_:
            raise ValueError(
                f"offload must be a 1-D bool array; got {offload.dtype} {offload.shape}"
            )
        m = offload.shape[0]
        arrays: dict[str, np.ndarray] = {"offload": offload}
        for name, low in (
            ("prediction", -1), ("bytes_up", 0), ("device_macs", 0), ("fallback_prediction", -1)
        ):  # fmt: skip
            arr = _ints(name, getattr(self, name), low=low)
            if arr.shape != (m,):
                raise ValueError(f"{name} must have shape ({m},) like offload; got {arr.shape}")
            arrays[name] = arr
        local = ~offload
        if (arrays["bytes_up"][local] != 0).any():
            raise ValueError("bytes_up must be 0 for requests that are not offloaded")
        if (arrays["prediction"][local] != arrays["fallback_prediction"][local]).any():
            raise ValueError(
                "prediction must equal fallback_prediction for requests kept on the device"
            )
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)

    @property
    def n_requests(self) -> int:
        """Number of requests m."""
        return int(self.offload.shape[0])

    @classmethod
    def device_or_edge(
        cls,
        offload: ArrayLike,
        on_device: ArrayLike,
        at_edge: ArrayLike,
        *,
        bytes_per_offload: int,
        device_macs: ArrayLike,
    ) -> Decision:
        """The decision of a device that answers every request itself and sends some.

        Parameters
        ----------
        offload : array_like of bool, shape (m,)
            Requests sent to the edge.
        on_device : array_like of int, shape (m,)
            The device's answer: the prediction of the requests it keeps, and the fallback of
            every request.
        at_edge : array_like of int, shape (m,)
            The edge's answer, the prediction of the offloaded requests.
        bytes_per_offload : int
            Uplink payload of an offloaded request, bytes.
        device_macs : int or array_like of int, shape (m,)
            Multiply-accumulates the device runs for each request.
        """
        sent = np.asarray(offload)
        return cls(
            offload=sent,
            prediction=np.where(sent, at_edge, on_device),
            bytes_up=np.where(sent, np.int64(bytes_per_offload), np.int64(0)),
            device_macs=_per_request(device_macs, sent.shape),
            fallback_prediction=np.asarray(on_device),
        )

    @classmethod
    def all_offloaded(
        cls, prediction: ArrayLike, *, bytes_up: ArrayLike, device_macs: ArrayLike = 0
    ) -> Decision:
        """The decision of a device that sends every request and has no answer of its own.

        Parameters
        ----------
        prediction : array_like of int, shape (m,)
            The edge's answer to each request.
        bytes_up, device_macs : int or array_like of int, shape (m,)
            Uplink payload (bytes) and device multiply-accumulates of each request.
        """
        answer = np.asarray(prediction)
        return cls(
            offload=np.ones(answer.shape, dtype=np.bool_),
            prediction=answer,
            bytes_up=_per_request(bytes_up, answer.shape),
            device_macs=_per_request(device_macs, answer.shape),
            fallback_prediction=np.full(answer.shape, -1, dtype=np.int64),
        )


def _per_request(value: ArrayLike, shape: tuple[int, ...]) -> IntArray:
    """``value`` (a scalar or one per request) as int64 of ``shape``, a new array."""
    return np.array(np.broadcast_to(np.asarray(value, dtype=np.int64), shape))


def tiny_or_large(
    trace: Trace, index: IntArray, offload: BoolArray, *, bytes_per_offload: int, device_macs: int
) -> Decision:
    """The decision of a device that runs the tiny model on every request and sends the
    ``offload`` ones to the large model (`Decision.device_or_edge` with the trace's tiny and
    large predictions of ``index``, a checked request index)."""
    return Decision.device_or_edge(
        offload,
        trace.tiny_prediction[index],
        trace.large_prediction[index],
        bytes_per_offload=bytes_per_offload,
        device_macs=device_macs,
    )


def check_index(trace: Trace, index: ArrayLike) -> IntArray:
    """``index`` as int64 of shape (m,); ``ValueError`` unless 1-D integers in ``[0, n)``."""
    idx = _ints("index", index, low=0)
    if idx.size and idx.max() >= trace.n_samples:
        raise ValueError(f"index must be in [0, {trace.n_samples}); got maximum {idx.max()}")
    return idx


def check_request(trace: Trace, index: ArrayLike, rng: np.random.Generator) -> IntArray:
    """Validate the arguments of `Policy.decide`; return ``index`` as int64 of shape (m,).

    Raises ``TypeError`` unless ``trace`` is a `Trace` and ``rng`` a ``numpy.random.Generator``,
    and ``ValueError`` unless ``index`` is 1-D integers in ``[0, trace.n_samples)``.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a tinylarge.integrate Trace; got {type(trace).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    return check_index(trace, index)


class Policy(abc.ABC):
    """Decides, per request, whether the device answers or the large model does.

    Subclasses set the class attribute ``name`` and implement `decide`; their constructors
    only store (and validate) arguments. Policies that tune on validation data override
    `fit`, which is a no-op by default.
    """

    name: ClassVar[str]

    def fit(self, validation: Trace) -> Self:
        """Tune on validation data (no-op by default); return ``self``."""
        return self

    @abc.abstractmethod
    def decide(
        self,
        trace: Trace,
        index: ArrayLike,
        rng: np.random.Generator,
        device: ArrayLike | None = None,
    ) -> Decision:
        """Decide for the requests whose samples are ``trace[index]``.

        Parameters
        ----------
        trace : Trace
            Per-sample model outputs, n samples.
        index : array_like of int, shape (m,)
            Sample of each request, in ``[0, n)``; repeats allowed (validate it with
            `check_request`).
        rng : numpy.random.Generator
            Randomness of stochastic policies (deterministic ones ignore it).
        device : array_like of int, shape (m,), optional
            Device that issued each request, for policies whose choice depends on the device
            (e.g. its split point); the others ignore it. The engine always passes it.

        Returns
        -------
        Decision
            Arrays of shape (m,).
        """
