"""Integration schemes of TinyML and LargeML: inference policies (tiny, large, compressed,
cascade, router, split, oracle, early exit) and co-learning schemes (FedAvg, FedProx, FedGKT,
split learning, SplitFed, the closed offload-distil loop)."""

from tinylarge.integrate.closed_loop import ClosedLoop
from tinylarge.integrate.colearning import CoLearning, FederatedData, LinkBudget, RoundRecord
from tinylarge.integrate.fed_distill import FedGKT
from tinylarge.integrate.fedavg import FedAvg, FedProx
from tinylarge.integrate.policies import Cascade, LargeCompressed, LargeOnly, Oracle, TinyOnly
from tinylarge.integrate.policy import Decision, Policy, Trace
from tinylarge.integrate.router import Router
from tinylarge.integrate.split import SplitPolicy
from tinylarge.integrate.split_learning import SplitFed, SplitLearning

__all__ = [
    "Cascade",
    "ClosedLoop",
    "CoLearning",
    "Decision",
    "FedAvg",
    "FedGKT",
    "FedProx",
    "FederatedData",
    "LargeCompressed",
    "LargeOnly",
    "LinkBudget",
    "Oracle",
    "Policy",
    "RoundRecord",
    "Router",
    "SplitFed",
    "SplitLearning",
    "SplitPolicy",
    "TinyOnly",
    "Trace",
]
