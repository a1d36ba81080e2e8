"""What the security stage (`tinylarge.sim.security_stages`) found, and its metrics.

Kept apart from the stage so that `tinylarge.sim.state.RunState` can hold it without importing
the stage (which imports the state).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tinylarge.secure.fuzz import FuzzSummary


@dataclass(frozen=True)
class AttackRow:
    """FedAvg's final test accuracy under one attack, malicious fraction and aggregator.

    Attributes
    ----------
    attack : str
        The attack's name (``"none"`` for the clean run).
    malicious_fraction : float
        Fraction of the devices that are malicious, in [0, 1).
    aggregator : str
        The server's aggregation rule (a registered aggregator name).
    accuracy : float
        Test accuracy of the global model after the last round, in [0, 1].
    """

    attack: str
    malicious_fraction: float
    aggregator: str
    accuracy: float


@dataclass(frozen=True)
class SecurityResult:
    """Wire costs, the fuzz campaign, aggregation under attack and differential privacy.

    Attributes
    ----------
    wire : dict
        Bytes the security layer adds and what they cost a device
        (`tinylarge.sim.security_stages.wire_costs`).
    fuzz : FuzzSummary
        The mutation campaign: messages sent, accepted (must be 0) and why each was refused.
    aggregation_under_attack : list of AttackRow, optional
        Every attack x fraction x aggregator; None when FedAvg could not run on the run's
        devices (recorded in ``RunState.skipped``).
    dp : dict, optional
        DP-FedAvg's accuracy and (epsilon, delta); None when off or when FedAvg could not run.
    """

    wire: dict[str, Any]
    fuzz: FuzzSummary
    aggregation_under_attack: list[AttackRow] | None = None
    dp: dict[str, Any] | None = None

    def metrics(self) -> dict[str, Any]:
        """``security``: ``wire`` and ``fuzz``, then ``aggregation_under_attack`` and ``dp``
        when they ran."""
        metrics: dict[str, Any] = {"wire": self.wire, "fuzz": self.fuzz.to_dict()}
        if self.aggregation_under_attack is not None:
            metrics["aggregation_under_attack"] = [asdict(r) for r in self.aggregation_under_attack]
        if self.dp is not None:
            metrics["dp"] = self.dp
        return metrics
