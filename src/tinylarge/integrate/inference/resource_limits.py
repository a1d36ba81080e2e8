"""Resource awareness: keep on the device what would miss its deadline or overdraw its battery.

Wraps the output of any policy instead of subclassing it: `apply_resource_limits` takes a
`Decision` and per-request predictions of what offloading would cost, and returns a new
`Decision` in which the requests that cannot be offloaded within the limits are kept on the
device. Arrays in, arrays out; no loop over requests or devices.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinylarge.integrate.inference.contract import Decision

FloatArray = NDArray[np.float64]

#: Relative slack of the energy budget, so that float64 rounding of a running sum does not
#: reject an offload that fits exactly (e.g. 0.1 + 0.2 J within a 0.3 J budget).
BUDGET_RTOL = 1e-9


def _floats(name: str, value: ArrayLike, shape: tuple[int, ...] | None) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {arr.shape}")
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError(f"{name} must be >= 0 and not NaN (inf allowed)")
    return arr


def _pair(a: str, va: object, b: str, vb: object) -> None:
    if (va is None) != (vb is None):
        raise ValueError(f"give both {a} and {b}, or neither")


def _devices(device: ArrayLike | None, m: int, budget_j: FloatArray) -> NDArray[np.int64]:
    """Device of each request, int64 (m,), checked against the shape of the budget."""
    if budget_j.ndim > 1:
        raise ValueError(f"energy_budget_j must be a scalar or 1-D; got shape {budget_j.shape}")
    if device is None:
        if budget_j.size != 1:
            raise ValueError(
                "energy_budget_j must be a scalar when device is not given (all requests "
                f"from one device); got shape {budget_j.shape}"
            )
        return np.zeros(m, dtype=np.int64)
    arr = np.asarray(device)
    if arr.shape != (m,) or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"device must be integers of shape ({m},); got {arr.dtype} {arr.shape}")
    dev = arr.astype(np.int64)
    high = budget_j.size if budget_j.ndim == 1 else None
    if m and (dev.min() < 0 or (high is not None and dev.max() >= high)):
        raise ValueError(
            f"device must be in [0, {high}) (one energy_budget_j per device)"
            if high is not None
            else "device must be >= 0"
        )
    return dev


def _over_budget(
    candidate: NDArray[np.bool_], energy_j: FloatArray, budget_j: FloatArray, dev: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Candidates that the per-device energy budget rejects (see `apply_resource_limits`)."""
    m = candidate.shape[0]
    if m == 0:
        return candidate
    budget = np.broadcast_to(budget_j, (m,)) if budget_j.ndim == 0 else budget_j[dev]
    limit = budget * (1.0 + BUDGET_RTOL)
    counted = candidate & (energy_j <= limit)  # affordable alone (always, if budget is inf)
    order = np.argsort(dev, kind="stable")  # by device, arrival order kept within a device
    spent = np.where(counted & np.isfinite(limit), energy_j, 0.0)[order]
    running = np.cumsum(spent)
    dev_sorted = dev[order]
    starts = np.flatnonzero(np.r_[True, dev_sorted[1:] != dev_sorted[:-1]])
    before = np.repeat((running - spent)[starts], np.diff(np.r_[starts, m]))
    within = np.empty(m, dtype=np.bool_)
    within[order] = running - before <= limit[order]
    return candidate & ~(counted & within)


def apply_resource_limits(
    decision: Decision,
    *,
    latency_s: ArrayLike | None = None,
    deadline_s: ArrayLike | None = None,
    energy_j: ArrayLike | None = None,
    energy_budget_j: ArrayLike | None = None,
    device: ArrayLike | None = None,
) -> Decision:
    """Keep on the device the offloads that would miss their deadline or overdraw the battery.

    Semantics, applied to the requests that ``decision`` offloads (the candidates):

    1. Deadline (if ``latency_s`` and ``deadline_s`` are given): a candidate whose predicted
       offload latency exceeds its deadline (``latency_s > deadline_s``) is kept.
    2. Energy (if ``energy_j`` and ``energy_budget_j`` are given), over the candidates left by
       step 1, separately per device and in the order given (which must be arrival order):
       a candidate whose energy alone exceeds its device's whole budget is kept and costs
       nothing; the others are offloaded while their running total of ``energy_j`` stays
       within the budget (up to a relative `BUDGET_RTOL`); from the first one that would
       overdraw it, every later candidate of that device is kept (its allowance is spent).

    A kept request gets ``offload = False``, ``bytes_up = 0`` and ``prediction =
    fallback_prediction`` (the device's own answer; -1, no answer, when it ran no model);
    ``device_macs`` and ``fallback_prediction`` are unchanged. Requests not offloaded by
    ``decision`` are never changed, and no limit offloads a request.

    Parameters
    ----------
    decision : Decision
        A policy's decision for m requests.
    latency_s : array_like of float, shape (m,), optional
        Predicted end-to-end latency of each request if offloaded, s (>= 0; inf = no link).
    deadline_s : float or array_like of float, shape (m,), optional
        Deadline of each request, s (>= 0; inf = none).
    energy_j : array_like of float, shape (m,), optional
        Predicted device energy of offloading each request (radio and any extra compute), J
        (>= 0; inf = impossible). Only offloaded requests draw on the budget.
    energy_budget_j : float or array_like of float, shape (n_devices,), optional
        Energy each device may spend on the offloads of these requests, J (>= 0; inf = none).
        A scalar is every device's budget.
    device : array_like of int, shape (m,), optional
        Device of each request, in ``[0, n_devices)``; omitted, all requests are one device's
        (then ``energy_budget_j`` must be a scalar).

    Returns
    -------
    Decision
        A new decision for the same m requests.
    """
    if not isinstance(decision, Decision):
        raise TypeError(f"decision must be a Decision; got {type(decision).__name__}")
    m = decision.n_requests
    keep = np.zeros(m, dtype=np.bool_)
    _pair("latency_s", latency_s, "deadline_s", deadline_s)
    _pair("energy_j", energy_j, "energy_budget_j", energy_budget_j)
    if device is not None and energy_j is None:
        raise ValueError("device is only used with energy_j and energy_budget_j")
    if latency_s is not None and deadline_s is not None:
        latency = _floats("latency_s", latency_s, (m,))
        deadline = _floats("deadline_s", deadline_s, None)
        if deadline.ndim != 0 and deadline.shape != (m,):
            raise ValueError(f"deadline_s must be a scalar or shape ({m},); got {deadline.shape}")
        keep |= decision.offload & (latency > deadline)
    if energy_j is not None and energy_budget_j is not None:
        energy = _floats("energy_j", energy_j, (m,))
        budget = _floats("energy_budget_j", energy_budget_j, None)
        dev = _devices(device, m, budget)
        keep |= _over_budget(decision.offload & ~keep, energy, budget, dev)
    return Decision(
        offload=decision.offload & ~keep,
        prediction=np.where(keep, decision.fallback_prediction, decision.prediction),
        bytes_up=np.where(keep, 0, decision.bytes_up),
        device_macs=decision.device_macs,
        fallback_prediction=decision.fallback_prediction,
    )
