"""Inference policies: per request, where the answer is computed (`Trace` in, `Decision` out).

One contract (`Policy`: ``fit`` on validation data, ``decide`` over request indices, JSON
persistence) is shared by the simulator and the device agents of the running system.
"""

from tinylarge.integrate.inference.baselines import (
    Cascade,
    LargeCompressed,
    LargeOnly,
    Oracle,
    TinyOnly,
)
from tinylarge.integrate.inference.contract import Decision, NotFittedError, Policy, Trace
from tinylarge.integrate.inference.early_exit import EarlyExit
from tinylarge.integrate.inference.router import Router
from tinylarge.integrate.inference.split_computing import SplitPolicy

__all__ = [
    "Cascade",
    "Decision",
    "EarlyExit",
    "LargeCompressed",
    "LargeOnly",
    "NotFittedError",
    "Oracle",
    "Policy",
    "Router",
    "SplitPolicy",
    "TinyOnly",
    "Trace",
]
