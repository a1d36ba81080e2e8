"""What the hybrid language-model stage found (`HybridLmResult`), and its goals.

``metrics.json`` keys (a contract): ``hybrid_lm.<scheme>.{tokens_per_s, uplink_fraction,
llm_calls_fraction, quality_vs_llm, bytes_per_token, device_energy_per_token_j,
p50_token_latency_s, p99_token_latency_s}`` for every scheme that ran, at the first link
quality of ``hybrid_lm.link_quality_db`` (the cell as drawn by default); beside them the
other link qualities, radio profiles, calibration, threshold sweep, models and goals.

Quality (stated in the report):

- ``quality_vs_llm``: greedy next-token accuracy on held-out text (teacher forcing: each
  position's emitted token is the one the scheme would output under greedy decoding) divided
  by the LLM's own. Speculative verification under greedy decoding accepts a draft iff it is
  the LLM's greedy token, so HLM scores exactly 1; U-HLM keeps its unsent drafts.
- ``likelihood_vs_llm``: the LLM's mean per-token likelihood of continuations each scheme
  samples (temperature ``hybrid_lm.temperature``), as ``exp(mean log p_scheme - mean log
  p_llm)``: 1 for a scheme whose samples the LLM finds as likely as its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinylarge.integrate.hybrid_lm.teacher_forced import PositionScores
from tinylarge.models.text.language_model import LanguageModel

#: The keys every scheme reports (the issue's contract), at the main link quality.
SCHEME_KEYS: tuple[str, ...] = (
    "tokens_per_s", "uplink_fraction", "llm_calls_fraction", "quality_vs_llm",
    "bytes_per_token", "device_energy_per_token_j", "p50_token_latency_s",
    "p99_token_latency_s",
)  # fmt: skip

#: Goals from U-HLM (Oh et al., arXiv 2412.12687): 45.93 % of uplinks skipped at 97.54 % of
#: the LLM's accuracy, 2.54x HLM's token throughput. The skipped fraction is the scheme's own
#: decision on the test text (``uplink_fraction``), not what the cell let through
#: (``sent_fraction``: devices in outage send nothing).
GOAL_SKIPPED_FRACTION = 0.45
GOAL_QUALITY = 0.97
GOAL_SPEEDUP_OVER_HLM = 2.5


def link_label(offset_db: float) -> str:
    """The key of a link quality: ``0 dB`` -> ``"+0db"``, ``-15`` -> ``"-15db"``."""
    return f"{offset_db:+g}db"


@dataclass(frozen=True)
class HybridLmResult:
    """The hybrid LM stage's findings, as they appear under ``hybrid_lm`` in metrics.json.

    Attributes
    ----------
    schemes : dict of scheme -> figures
        Quality (``next_token_accuracy``, ``quality_vs_llm``, ``likelihood_vs_llm``,
        ``acceptance_rate``) and the network figures at the main link quality.
    link_quality : dict of link label -> scheme -> network figures
        Every link quality of the scenario (`link_label`).
    profiles : dict of radio profile -> scheme -> network figures
        The main link quality on each compared radio profile.
    models, corpus, calibration, threshold_sweep, exactness, edge_service : dict
        The pair of models and their MCU cost; the text; U-HLM's fitted threshold; uplink
        fraction and quality against the threshold; distance of each scheme's output from
        the LLM's; the edge's measured verification time.
    """

    schemes: dict[str, dict[str, Any]]
    link_quality: dict[str, dict[str, dict[str, Any]]]
    profiles: dict[str, dict[str, dict[str, Any]]]
    models: dict[str, Any]
    corpus: dict[str, Any]
    calibration: dict[str, Any]
    threshold_sweep: dict[str, Any]
    exactness: dict[str, Any]
    edge_service: dict[str, Any]
    main_link: str = field(default="+0db")

    def goals(self) -> dict[str, Any]:
        """Each goal with its numbers and whether it was met (None when a scheme it needs did
        not run)."""
        u = self.schemes.get("u_hlm")
        skipped = quality = None
        weak = min(self.link_quality, key=lambda k: float(k.removesuffix("db")), default=None)
        if u is not None:
            skipped, quality = 1.0 - u["uplink_fraction"], u["quality_vs_llm"]
        speedup = {s: self._over_hlm(weak, s) for s in ("u_hlm", "cu_hlm")}
        return {
            "skipped_uplinks": {
                "u_hlm_skipped_fraction": skipped, "u_hlm_quality_vs_llm": quality,
                "goal_skipped_fraction": GOAL_SKIPPED_FRACTION, "goal_quality": GOAL_QUALITY,
                "met": None if skipped is None or quality is None
                else bool(skipped >= GOAL_SKIPPED_FRACTION and quality >= GOAL_QUALITY),
            },
            "throughput_over_hlm_on_weak_link": {
                "link": weak, "u_hlm_over_hlm": speedup["u_hlm"],
                "cu_hlm_over_hlm": speedup["cu_hlm"], "goal": GOAL_SPEEDUP_OVER_HLM,
                "met": None if speedup["u_hlm"] is None
                else bool(speedup["u_hlm"] >= GOAL_SPEEDUP_OVER_HLM),
                "met_by_cu_hlm": None if speedup["cu_hlm"] is None
                else bool(speedup["cu_hlm"] >= GOAL_SPEEDUP_OVER_HLM),
            },
        }  # fmt: skip

    def _over_hlm(self, link: str | None, scheme: str) -> float | None:
        """``scheme``'s tokens/s over HLM's at ``link`` (None when either did not run)."""
        at = self.link_quality.get(link, {}) if link is not None else {}
        if not {scheme, "hlm"} <= set(at) or not at["hlm"]["tokens_per_s"] > 0:
            return None
        return float(at[scheme]["tokens_per_s"] / at["hlm"]["tokens_per_s"])

    def metrics(self) -> dict[str, Any]:
        """The ``hybrid_lm`` part of metrics.json."""
        return {
            **self.schemes,
            "link_quality": self.link_quality,
            "profiles": self.profiles,
            "models": self.models,
            "corpus": self.corpus,
            "calibration": self.calibration,
            "threshold_sweep": self.threshold_sweep,
            "exactness": self.exactness,
            "edge_service": self.edge_service,
            "main_link": self.main_link,
            "goals": self.goals(),
        }


@dataclass(frozen=True)
class LanguageRun:
    """What the ``language_models`` stage leaves for the ``hybrid_lm`` stage.

    Attributes
    ----------
    draft, target : LanguageModel
        The device's and the edge's models (one vocabulary).
    calibration, test : PositionScores
        Both models scored on two disjoint halves of the held-out text: the first calibrates
        U-HLM's threshold, the second measures every scheme.
    prompts : list of list of int
        Prompts (the first tokens of held-out documents) for sampled continuations.
    corpus : dict
        What the text is (source, documents, characters, tokens).
    """

    draft: LanguageModel
    target: LanguageModel
    calibration: PositionScores
    test: PositionScores
    prompts: list[list[int]]
    corpus: dict[str, Any]
