"""Integration schemes of TinyML and LargeML: inference policies (tiny, large, compressed,
cascade, router, split, oracle) and, later, co-learning schemes."""

from tinylarge.integrate.policies import Cascade, LargeCompressed, LargeOnly, Oracle, TinyOnly
from tinylarge.integrate.policy import Decision, Policy, Trace
from tinylarge.integrate.router import Router
from tinylarge.integrate.split import SplitPolicy

__all__ = [
    "Cascade",
    "Decision",
    "LargeCompressed",
    "LargeOnly",
    "Oracle",
    "Policy",
    "Router",
    "SplitPolicy",
    "TinyOnly",
    "Trace",
]
