"""How sure the tiny model is, from its logits, and thresholds tuned on validation data.

All functions are pure and vectorized. Logits are real arrays of shape (n, C), C >= 2;
probabilities are a numerically stable softmax computed in float64 (the largest logit is
subtracted before exponentiating). A cascade offloads a sample when its confidence is
*below* a threshold: ``offload = confidence < threshold``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
#: Accepted ``kind`` values of `confidence`.
KINDS: tuple[str, ...] = ("max_softmax", "margin", "entropy")


def _check_logits(logits: ArrayLike) -> FloatArray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, C) with C >= 2; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("logits must be finite (no NaN or inf)")
    return arr


def log_softmax(logits: ArrayLike) -> FloatArray:
    """Log-probabilities ``z - logsumexp(z)`` per row, float64 of shape (n, C); finite."""
    z = _check_logits(logits)
    shifted = z - z.max(axis=1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


def softmax(logits: ArrayLike) -> FloatArray:
    """Class probabilities per row, float64 of shape (n, C); each row sums to 1."""
    z = _check_logits(logits)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def max_softmax(logits: ArrayLike) -> FloatArray:
    """Largest class probability per row, float64 of shape (n,), in [1/C, 1]."""
    return np.asarray(softmax(logits).max(axis=1))


def margin(logits: ArrayLike) -> FloatArray:
    """Top-1 minus top-2 class probability per row, float64 of shape (n,), in [0, 1]."""
    p = softmax(logits)
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def entropy(logits: ArrayLike) -> FloatArray:
    """Shannon entropy of the softmax per row, nats, float64 of shape (n,), in [0, ln C]."""
    logp = log_softmax(logits)
    return np.asarray(np.maximum(-(np.exp(logp) * logp).sum(axis=1), 0.0))


def confidence(logits: ArrayLike, kind: str) -> FloatArray:
    """Confidence per row, float64 of shape (n,); higher means more confident.

    Parameters
    ----------
    logits : array_like of float, shape (n, C)
        Model logits, C >= 2.
    kind : {"max_softmax", "margin", "entropy"}
        `max_softmax`, `margin`, or the negative `entropy` (nats).
    """
    if kind == "max_softmax":
        return max_softmax(logits)
    if kind == "margin":
        return margin(logits)
    if kind == "entropy":
        return np.asarray(-entropy(logits))
    raise ValueError(f"unknown confidence kind {kind!r}; allowed: {', '.join(KINDS)}")


def _check_confidence(values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"confidence must be a non-empty 1-D array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("confidence must be finite (no NaN or inf)")
    return arr


def _cut_points(conf: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
    """Every achievable split of the validation data by ``conf < threshold``.

    Returns thresholds (the sorted distinct values, then ``+inf``) and, for each, how many
    samples it offloads (the number of values strictly below it; ``n`` for ``+inf``). Tied
    values always fall on the same side, so no other offload count is achievable.
    """
    values, group_sizes = np.unique(conf, return_counts=True)
    below = np.concatenate(([0], np.cumsum(group_sizes)))
    return np.append(values, np.inf), below.astype(np.int64)


def threshold_for_offload_fraction(confidence: ArrayLike, target_fraction: float) -> float:
    """Threshold whose offload fraction on the validation data is closest to the target.

    The validation data are split by ``offload = confidence < threshold``. The candidate
    thresholds are the distinct confidence values (offloading every sample strictly below
    each) and ``+inf`` (offloading all); tied samples therefore fall on the same side, and
    the achievable offload counts are the tie-group boundaries. The candidate whose count is
    nearest to ``target_fraction * n`` is returned (the lower count on an exact tie), so the
    validation offload fraction is the exact empirical quantile when no ties straddle it and
    is off by at most half the size of the tie group that does.

    Parameters
    ----------
    confidence : array_like of float, shape (n,)
        Validation confidences (higher = more confident); finite.
    target_fraction : float
        Wanted offload fraction, in [0, 1].

    Returns
    -------
    float
        The threshold: a validation confidence value, or ``inf`` to offload everything.
        Target 0 returns the smallest value (nothing below it is offloaded).
    """
    conf = _check_confidence(confidence)
    if not 0.0 <= target_fraction <= 1.0:
        raise ValueError(f"target_fraction must be in [0, 1]; got {target_fraction}")
    thresholds, counts = _cut_points(conf)
    distance = np.abs(counts - target_fraction * conf.size)
    return float(thresholds[int(np.argmin(distance))])  # argmin: first, i.e. lower count


def threshold_for_accuracy(
    confidence: ArrayLike,
    tiny_correct: ArrayLike,
    large_correct: ArrayLike,
    target_accuracy: float,
) -> float:
    """Threshold with the smallest offload fraction whose system accuracy reaches the target.

    With ``offload = confidence < threshold``, the system is right on sample i when
    ``large_correct[i]`` if offloaded else ``tiny_correct[i]``. Among the candidate thresholds
    of `threshold_for_offload_fraction` (ties on the same side), the one offloading the
    fewest validation samples with accuracy ``>= target_accuracy`` (up to 1e-12) is returned.
    If no threshold reaches the target, the most accurate one is returned (the fewest
    offloads among equals): it is at least as accurate as offloading everything and offloads
    no more. Check the achieved accuracy on validation when the target may be unreachable.

    Parameters
    ----------
    confidence : array_like of float, shape (n,)
        Validation confidences; finite.
    tiny_correct, large_correct : array_like of bool, shape (n,)
        Whether the tiny / large model classifies each validation sample correctly.
    target_accuracy : float
        Wanted system accuracy on validation, in [0, 1].

    Returns
    -------
    float
        The threshold: a validation confidence value, or ``inf`` to offload everything.
    """
    conf = _check_confidence(confidence)
    tiny = np.asarray(tiny_correct)
    large = np.asarray(large_correct)
    for name, arr in (("tiny_correct", tiny), ("large_correct", large)):
        if arr.shape != conf.shape or arr.dtype != np.bool_:
            raise ValueError(
                f"{name} must be bool of shape {conf.shape}; got {arr.dtype} {arr.shape}"
            )
    if not 0.0 <= target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in [0, 1]; got {target_accuracy}")
    order = np.argsort(conf, kind="stable")
    gain = np.concatenate(([0], np.cumsum(large[order].astype(np.int64) - tiny[order])))
    thresholds, counts = _cut_points(conf)
    accuracy = (int(tiny.sum()) + gain[counts]) / conf.size
    reached = np.flatnonzero(accuracy >= target_accuracy - 1e-12)
    best = int(reached[0]) if reached.size else int(np.argmax(accuracy))  # argmax: first
    return float(thresholds[best])


def check_kind(kind: str) -> str:
    """``kind`` if it is one of `KINDS`; else ``ValueError`` naming the allowed kinds."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind


def cascade_outcome(
    confidence: ArrayLike, threshold: float, device_correct: ArrayLike, edge_correct: ArrayLike
) -> tuple[float, float]:
    """Offload fraction and system accuracy of ``offload = confidence < threshold``.

    The system is right on a sample when the edge is (offloaded) or the device is (kept).

    Parameters
    ----------
    confidence : array_like of float, shape (n,)
        Confidences of the device's model.
    threshold : float
        Offload below it.
    device_correct, edge_correct : array_like of bool, shape (n,)
        Whether the device's / the edge's answer to each sample is right.

    Returns
    -------
    (offload_fraction, accuracy) : floats in [0, 1]
    """
    offload = np.asarray(confidence, dtype=np.float64) < threshold
    right = np.where(offload, np.asarray(edge_correct, bool), np.asarray(device_correct, bool))
    return float(offload.mean()), float(right.mean())
