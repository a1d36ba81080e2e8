"""Integration schemes of TinyML and LargeML.

- `tinylarge.integrate.inference`: inference policies (``Trace`` in, ``Decision`` out): tiny,
  large, compressed input, oracle, cascade, router, split computing, early exit, resource limits.
- `tinylarge.integrate.colearning`: co-learning schemes (``CoLearning.round -> RoundRecord``):
  FedAvg, FedProx, FedGKT, split learning, SplitFed, the closed offload-distil loop.
"""

from tinylarge.integrate.colearning import (
    ClosedLoop,
    CoLearning,
    FedAvg,
    FederatedData,
    FedGKT,
    FedProx,
    LinkBudget,
    RoundRecord,
    SplitFed,
    SplitLearning,
)
from tinylarge.integrate.inference import (
    Cascade,
    Decision,
    LargeCompressed,
    LargeOnly,
    Oracle,
    Policy,
    Router,
    SplitPolicy,
    TinyOnly,
    Trace,
)

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
