"""What the ``foundation`` stage measured, and its ``foundation`` section of `metrics.json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Score:
    """Test accuracy of one fitted model (overall and at SNR >= 6 dB; None without SNRs)."""

    accuracy: float
    accuracy_snr_ge_6db: float | None
    labelled_frames: int
    trainable_parameters: int
    train_time_s: float

    def metrics(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class OodSet:
    """One out-of-distribution test set: what differs from the fine-tuning data, and the
    accuracy of the foundation model and of the baseline on it."""

    description: str
    foundation: float
    baseline: float


@dataclass
class FoundationResult:
    """Label efficiency, out-of-distribution accuracy and distillation, foundation model vs the
    from-scratch baseline.

    Attributes
    ----------
    label_efficiency : dict of row -> {labels per class ("1", "10", "100", "all") -> Score}
        Rows ``foundation_probe``, ``foundation_lora``, ``foundation_full`` and the baseline's
        name (``large_resnet``).
    in_distribution : dict of {"foundation", "baseline"} -> accuracy on the test frames
    out_of_distribution : dict of set name -> OodSet
    distillation : dict of teacher ("from_foundation", "from_baseline") -> metrics
    eval_frames : int
        Test frames every score is measured on.
    baseline : str
        Registered name of the baseline.
    """

    label_efficiency: dict[str, dict[str, Score]] = field(default_factory=dict)
    in_distribution: dict[str, float] = field(default_factory=dict)
    out_of_distribution: dict[str, OodSet] = field(default_factory=dict)
    distillation: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_frames: int = 0
    baseline: str = "large_resnet"

    def goals(self) -> dict[str, bool | None]:
        """The targets: 10x label efficiency, all labels at least the baseline, a smaller
        out-of-distribution loss, a distilled student at least as accurate (None: not run)."""
        rows = self.label_efficiency
        base = rows.get(self.baseline, {})
        foundation = {k: v for k, v in rows.items() if k.startswith("foundation_")}
        best = {
            labels: max(row[labels].accuracy for row in foundation.values() if labels in row)
            for labels in ("10", "all")
            if any(labels in row for row in foundation.values())
        }
        ood = self.mean_ood_drop()
        distil = self.distillation
        return {
            "ten_x_label_efficiency": (
                best["10"] >= base["100"].accuracy if "10" in best and "100" in base else None
            ),
            "all_labels_at_least_baseline": (
                best["all"] >= base["all"].accuracy if "all" in best and "all" in base else None
            ),
            "out_of_distribution_loses_less": (
                ood["foundation"] < ood["baseline"] if ood is not None else None
            ),
            "distilled_at_least_as_accurate": (
                distil["from_foundation"]["int8_accuracy"]
                >= distil["from_baseline"]["int8_accuracy"]
                if {"from_foundation", "from_baseline"} <= set(distil)
                else None
            ),
        }

    def mean_ood_drop(self) -> dict[str, float] | None:
        """Mean accuracy lost from the in-distribution test frames to the OOD sets, per model."""
        if not self.out_of_distribution or not self.in_distribution:
            return None
        sets = self.out_of_distribution.values()
        return {
            who: self.in_distribution[who]
            - sum(getattr(s, who) for s in sets) / len(self.out_of_distribution)
            for who in ("foundation", "baseline")
        }

    def metrics(self) -> dict[str, Any]:
        """The ``foundation`` section of `metrics.json`."""
        return {
            "eval_frames": self.eval_frames,
            "baseline": self.baseline,
            "label_efficiency": {
                row: {labels: score.metrics() for labels, score in scores.items()}
                for row, scores in self.label_efficiency.items()
            },
            "in_distribution": dict(self.in_distribution),
            "out_of_distribution": {
                name: dict(vars(s)) for name, s in self.out_of_distribution.items()
            },
            "mean_ood_drop": self.mean_ood_drop(),
            "distillation": self.distillation,
            "goals": self.goals(),
        }
