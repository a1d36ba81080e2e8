"""What the policies stage (`tinylarge.sim.policy_stages`) leaves for later stages, and its
metrics.

Kept apart from the stage so that `tinylarge.sim.state.RunState` can hold it without importing
the stage (which imports the state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinylarge.integrate.inference.contract import Policy
from tinylarge.sim.engine import PolicyOutcome, Requests


@dataclass(frozen=True)
class PoliciesResult:
    """Every inference policy on the same requests over the run's network.

    Attributes
    ----------
    outcomes : dict of policy key -> PolicyOutcome
        Per-request outcome of each policy (with the security layer when it is on), in the
        order the policies were compared.
    fitted : dict of policy key -> Policy
        The policies as run (tuned ones fitted on the validation frames).
    requests : Requests
        The requests every policy answered (device, arrival time, test sample).
    validation_source : str
        Where the validation frames the tuned policies were fitted on come from.
    tuned : dict of policy key -> dict of str -> float
        Each policy's fitted scalars (attributes ending in ``_``, finite), e.g. thresholds.
    payload_accuracy : dict of way of sending -> {"accuracy", "bytes_up"}
        Accuracy of the edge's answer for each way of sending the whole frame, and its mean
        payload bytes per request (`tinylarge.sim.policy_stages.payload_accuracy`).
    unprotected : dict of policy key -> summary
        `PolicyOutcome.summary` of the reference policies run without the security layer
        (same draws); empty when messages are not protected.
    split_exit : dict
        The graft's sizes, costs and accuracies and the split points' distribution
        (`tinylarge.sim.split_exit_stages.split_exit_metrics`); empty without split or exit.
    """

    outcomes: dict[str, PolicyOutcome]
    fitted: dict[str, Policy]
    requests: Requests
    validation_source: str
    tuned: dict[str, dict[str, float]]
    payload_accuracy: dict[str, dict[str, float]]
    unprotected: dict[str, dict[str, Any]]
    split_exit: dict[str, Any]

    def summaries(self) -> dict[str, dict[str, Any]]:
        """`PolicyOutcome.summary` of every policy, by key."""
        return {key: outcome.summary() for key, outcome in self.outcomes.items()}

    def metrics(self, target_offload: float) -> dict[str, Any]:
        """``policies``: per policy its accuracy, offload fraction, latency, energy, bytes and
        deadlines with its fitted scalars; then, under keys starting with ``_``, where the
        validation frames come from, the best policy within ``target_offload`` (a fraction in
        [0, 1]), payload accuracies, unprotected references and the split/exit graft."""
        metrics: dict[str, Any] = {}
        for key, outcome in self.outcomes.items():
            metrics[key] = {**outcome.summary(), **self.tuned.get(key, {})}
        metrics["_validation"] = self.validation_source
        best = best_within_offload(metrics, target_offload)
        if best is not None:
            metrics["_best_within_target_offload"] = best
        metrics["_payload_accuracy"] = self.payload_accuracy
        if self.unprotected:
            metrics["_unprotected"] = self.unprotected
        if self.split_exit:
            metrics["_split_exit"] = self.split_exit
        return metrics


#: Policies that are bounds, not something a device can run: never the "best" policy.
BOUNDS: tuple[str, ...] = ("oracle",)


def best_policy(summaries: Mapping[str, Any], max_offload: float) -> str | None:
    """The best realisable policy offloading at most ``max_offload`` of its requests.

    The one rule of the terminal line, ``metrics.json`` and the report: the highest accuracy;
    among equally accurate policies the least device energy per request; among those the first
    in ``summaries``' order. Bounds (`BOUNDS`: the oracle knows which frames the large model
    fixes) and ``_``-prefixed extras never count; offloading exactly ``max_offload`` is within.

    Parameters
    ----------
    summaries : mapping
        Policy name -> ``accuracy``, ``offload_fraction``, ``energy_j_per_inference`` (J), ...
    max_offload : float
        Largest fraction of requests the policy may offload, 0-1.

    Returns
    -------
    str or None
        The policy's name; None when no policy is within ``max_offload``.
    """
    eligible = [
        (name, s)
        for name, s in summaries.items()
        if not name.startswith("_") and name not in BOUNDS and s["offload_fraction"] <= max_offload
    ]
    if not eligible:
        return None
    # min over (-accuracy, energy): the first of equal keys wins, so order breaks a full tie
    return min(eligible, key=lambda e: (-e[1]["accuracy"], e[1]["energy_j_per_inference"]))[0]


def best_within_offload(summaries: dict[str, Any], max_offload: float) -> dict[str, Any] | None:
    """`best_policy` against large: its accuracy and device energy as shares of ``large``'s.

    The goal it measures: at least 98 % of the large model's accuracy at <= 40 % offload, with
    less device energy per inference than ``large``. None without a ``large`` policy.
    """
    large = summaries.get("large")
    name = best_policy(summaries, max_offload)
    if large is None or name is None or not large["accuracy"]:
        return None
    best = summaries[name]
    return {
        "policy": name,
        "max_offload_fraction": max_offload,
        "offload_fraction": best["offload_fraction"],
        "accuracy": best["accuracy"],
        "accuracy_share_of_large": best["accuracy"] / large["accuracy"],
        "energy_share_of_large": best["energy_j_per_inference"] / large["energy_j_per_inference"],
    }
