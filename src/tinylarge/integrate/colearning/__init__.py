"""Co-learning schemes: rounds between devices and the server (`CoLearning.round -> RoundRecord`).

Every byte a round moves crosses the 6G link (`LinkBudget`) and is accounted in its record.
The maths (averaging, robust aggregation, compression) lives in module-level functions.
"""

from tinylarge.integrate.colearning.closed_loop import ClosedLoop
from tinylarge.integrate.colearning.contract import (
    CoLearning,
    FederatedData,
    LinkBudget,
    RoundRecord,
)
from tinylarge.integrate.colearning.fed_gkt import FedGKT
from tinylarge.integrate.colearning.fedavg import FedAvg, FedProx
from tinylarge.integrate.colearning.split_learning import SplitFed, SplitLearning

__all__ = [
    "ClosedLoop",
    "CoLearning",
    "FedAvg",
    "FedGKT",
    "FedProx",
    "FederatedData",
    "LinkBudget",
    "RoundRecord",
    "SplitFed",
    "SplitLearning",
]
