"""Every hybrid scheme on the scored held-out text and over the 6G cell (`run_schemes`).

For each scheme: its per-position trace on the test half (uploads, payload bytes, greedy
output; `tinylarge.integrate.hybrid_lm.teacher_forced`) gives quality; the same trace walked by
every device token by token (`tinylarge.sim.hybrid_lm_network`) gives tokens/s, latency, bytes
and device energy at each link quality and on each compared radio profile; sampled
continuations (`tinylarge.integrate.hybrid_lm.generation.generate`) give the LLM's likelihood
of what the scheme writes.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tinylarge.config.hybrid_lm_config import HybridLmConfig, UncertaintyMeasure
from tinylarge.config.scenario import Scenario
from tinylarge.integrate.hybrid_lm.generation import generate_many
from tinylarge.integrate.hybrid_lm.quality import (
    Calibration,
    calibrate,
    llm_accuracy,
    next_token_accuracy,
    quality_vs_llm,
    threshold_sweep,
)
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, make_scheme
from tinylarge.integrate.hybrid_lm.teacher_forced import TokenTrace, scheme_trace
from tinylarge.integrate.hybrid_lm.wire import ENVELOPE_BYTES
from tinylarge.models.text.checkpoints import builtin_lm_dir, is_our_checkpoint, read_lm_config
from tinylarge.models.text.language_model import LanguageModel, OurLanguageModel
from tinylarge.net.cell import CellDevices, attach_devices
from tinylarge.net.edge_service import EdgeServiceModel
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.hybrid_lm_edge import measure_verification
from tinylarge.sim.hybrid_lm_network import (
    TokenLink,
    TokenSchedule,
    simulate_token_streams,
)
from tinylarge.sim.hybrid_lm_results import GOAL_QUALITY, HybridLmResult, LanguageRun, link_label
from tinylarge.sim.net_stages import link_settings, network_profiles
from tinylarge.sim.security_costs import LM_PREFIX, message_overhead
from tinylarge.sim.tiny_stages import mcu_profiles
from tinylarge.tiny.lm_footprint import lm_mcu_cost, lm_mcu_table

#: Thresholds of the sweep: this many quantiles of the test text's uncertainty.
_SWEEP_POINTS = 51


def _likelihood(
    scheme: HybridScheme, language: LanguageRun, config: HybridLmConfig, seed: int
) -> tuple[float, float]:
    """The target's mean log-likelihood (nats per token, at temperature 1) of the
    continuations ``scheme`` samples from every prompt, and the fraction of verified drafts it
    accepted (NaN when none was verified)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "hybrid_lm", scheme.name))
    runs = generate_many(scheme, language.draft, language.target, language.prompts,
                         config.tokens_per_prompt, generator)  # fmt: skip
    context = language.target.context_tokens
    log_p = []
    for prompt, out in zip(language.prompts, runs, strict=True):
        tokens = torch.tensor([*prompt, *out.tokens.tolist()][-context:])[None, :]
        logits = language.target.logits(tokens)[0, :-1].double()
        scores = torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None])[:, 0]
        log_p.append(scores[-len(out.tokens) :])
    verified = np.concatenate([r.uploaded for r in runs])
    accepted = np.concatenate([r.accepted for r in runs])
    rate = float(accepted[verified].mean()) if verified.any() else float("nan")
    return float(torch.cat(log_p).mean()), rate


def _schedule(scheme: HybridScheme, trace: TokenTrace, draft_macs: int) -> TokenSchedule:
    """The trace as the network simulation walks it: request and reply sizes with the
    deployment's envelope (`ENVELOPE_BYTES`), and the draft's MACs."""
    return TokenSchedule(
        upload=trace.uploaded, payload_up=trace.up_bytes + ENVELOPE_BYTES,
        reply_bytes=ENVELOPE_BYTES + int(trace.reply_bytes.max(initial=0)),
        draft_macs=draft_macs if scheme.uses_draft_model else 0,
    )  # fmt: skip


#: A device in a link-quality comparison keeps its mean uplink SNR at least this far above the
#: profile's minimum (a fading margin), so it is in coverage, dB.
COVERAGE_MARGIN_DB = 3.0
#: Candidate devices drawn per device kept.
_CANDIDATES = 8


def token_cells(
    scenario: Scenario, profile: str, offset_db: float, devices: int | None = None
) -> CellDevices:
    """The ``devices`` (default ``hybrid_lm.devices``) devices that generate text on
    ``profile``, with every mean SNR moved by ``offset_db`` (link quality); the simulator and
    the deployment's link emulation draw the same ones.

    The same devices at every link quality: candidates dropped in the scenario's cells, keeping
    the first ones that stay in coverage at the weakest link quality of
    ``hybrid_lm.link_quality_db`` (uplink mean SNR >= the profile's minimum +
    `COVERAGE_MARGIN_DB`). Throughput against link quality then compares one set of connected
    devices over a stronger and a weaker channel, as a testbed in strong and weak coverage
    does; how many devices a cell covers at all is the network stage's coverage. ``ValueError``
    when too few are covered."""
    config, net = scenario.hybrid_lm, scenario.network
    count = config.devices if devices is None else devices
    radio = network_profiles(scenario)[profile]
    rng = rng_for(scenario.seed, "hybrid_lm", "cells", profile)
    cells = attach_devices(rng, radio, _CANDIDATES * count, n_cells=net.n_cells,
                           indoor_fraction=net.indoor_fraction,
                           device_height_m=net.device_height_m)  # fmt: skip
    weakest = min(config.link_quality_db)
    margin = cells.uplink_mean_snr_db + weakest - radio.min_snr_db
    covered = np.flatnonzero(margin >= COVERAGE_MARGIN_DB)
    if covered.size < count:
        raise ValueError(
            f"only {covered.size} of {cells.n_devices} devices dropped on {profile!r} keep "
            f"coverage at a mean-SNR offset of {weakest:g} dB; raise hybrid_lm.link_quality_db "
            "or choose another radio profile"
        )
    kept = cells.take(covered[:count])
    return replace(kept, uplink_mean_snr_db=kept.uplink_mean_snr_db + offset_db,
                   downlink_mean_snr_db=kept.downlink_mean_snr_db + offset_db)  # fmt: skip


def _network(
    scenario: Scenario,
    schedules: Mapping[str, TokenSchedule],
    device: DraftCost,
    edge: EdgeServiceModel,
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, dict[str, Any]]]]:
    """Network figures per link quality (main profile) and per compared profile (first link
    quality), every scheme over the same devices and draws."""
    config, net = scenario.hybrid_lm, scenario.network
    overhead = message_overhead(scenario, config.devices, prefix=LM_PREFIX)
    profiles = network_profiles(scenario)
    settings = link_settings(net)

    def run(profile: str, offset_db: float) -> dict[str, dict[str, Any]]:
        link = TokenLink(token_cells(scenario, profile, offset_db), settings, edge,
                         scenario.deploy.reply_deadline_s, overhead)  # fmt: skip
        return {
            name: simulate_token_streams(
                rng_for(scenario.seed, "hybrid_lm", "tokens", profile, f"{offset_db:g}"),
                schedule, link, tokens_per_device=config.tokens_per_device,
                seconds_per_mac=device.seconds_per_mac, joules_per_mac=device.joules_per_mac,
            ).summary()
            for name, schedule in schedules.items()
        }  # fmt: skip

    by_link = {link_label(o): run(net.profile, o) for o in config.link_quality_db}
    first = config.link_quality_db[0]
    names = dict.fromkeys([net.profile, *net.compare_profiles])
    by_profile = {p: by_link[link_label(first)] if p == net.profile else run(p, first)
                  for p in names if p in profiles}  # fmt: skip
    return by_link, by_profile


@dataclass(frozen=True)
class DraftCost:
    """The draft LM on the scenario's target MCU: MACs per token and their time and energy
    (`tinylarge.tiny.lm_footprint`), with a summary for the report."""

    macs_per_token: int
    seconds_per_mac: float
    joules_per_mac: float
    record: dict[str, Any]


def draft_cost(scenario: Scenario, draft: LanguageModel) -> DraftCost:
    """Cost the draft on ``tiny.target_mcu`` at half its context (mid-way through a reply);
    every built-in board is listed with whether the model fits. A model of another family
    (a Hugging Face directory) is priced at one MAC per parameter per token."""
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    context = max(1, draft.context_tokens // 2)
    if isinstance(draft, OurLanguageModel):
        cost = lm_mcu_cost(draft, mcu, context)
        known = mcu_profiles(scenario)
        boards = list(dict.fromkeys(known[c.mcu].part for c in lm_mcu_table(draft, context)
                                    if c.fits and c.mcu in known))  # fmt: skip
        macs, latency, energy = cost.macs, cost.latency_s, cost.energy_j
        record: dict[str, Any] = {
            "mcu": scenario.tiny.target_mcu, "context_tokens": context, "macs_per_token": macs,
            "flash_bytes": cost.flash_bytes, "ram_bytes": cost.ram_bytes, "fits": cost.fits,
            "latency_s_per_token": latency, "energy_j_per_token": energy, "fits_on": boards,
        }  # fmt: skip
        fits_words = ", ".join(boards) if boards else "none of the built-in boards"
        record["summary"] = (
            f"The draft on {scenario.tiny.target_mcu}: {macs:,} MACs per token at "
            f"{context} tokens of context, {1e3 * latency:.1f} ms and {1e3 * energy:.3f} mJ per "
            f"token; int8 weights {cost.flash_bytes / 1024:.0f} KiB of flash, KV cache and "
            f"buffers {cost.ram_bytes / 1024:.0f} KiB of RAM. It fits on: {fits_words}."
        )
    else:
        macs = max(1, draft.parameter_count)
        latency = macs * mcu.cycles_per_mac / mcu.clock_hz
        energy = latency * mcu.active_power_w
        record = {"mcu": scenario.tiny.target_mcu, "macs_per_token": macs,
                  "latency_s_per_token": latency, "energy_j_per_token": energy,
                  "summary": "A draft of another family, priced at one MAC per parameter per "
                             "token on the target MCU."}  # fmt: skip
    return DraftCost(macs, latency / macs, energy / macs, record)


def _model_record(
    lm: LanguageModel, spec: str, role: Literal["draft", "target"], accuracy: float
) -> dict[str, Any]:
    """What a model is: name, parameters, where from, its greedy next-token accuracy on the
    test half, and (our checkpoints) the training record of its config.json."""
    record: dict[str, Any] = {
        "name": lm.name, "parameters": lm.parameter_count,
        "source": "shipped checkpoint" if spec == "builtin" else spec,
        "next_token_accuracy": accuracy,
    }  # fmt: skip
    directory = builtin_lm_dir(role) if spec == "builtin" else Path(spec)
    if is_our_checkpoint(directory):
        training = read_lm_config(directory).get("training", {})
        record["training"] = training
        for key in ("held_out_perplexity", "perplexity"):
            if key in training:
                record["perplexity"] = training[key]
    return record


def _calibrations(language: LanguageRun, config: HybridLmConfig) -> dict[str, Calibration]:
    """U-HLM's threshold (full distribution) and CU-HLM's (truncated), from the calibration
    half of the held-out text."""
    scores = language.calibration
    return {
        "u_hlm": calibrate(scores, config.uncertainty, config.rejection_tolerance),
        "cu_hlm": calibrate(scores, config.uncertainty, config.rejection_tolerance,
                            truncated=True),
    }  # fmt: skip


def _calibration_record(c: Calibration, config: HybridLmConfig) -> dict[str, Any]:
    value = c.threshold.value
    return {
        "measure": c.measure, "slope": c.fit.slope, "intercept": c.fit.intercept, "r": c.fit.r,
        "positions": c.fit.positions, "tolerance": config.rejection_tolerance,
        "threshold": value if np.isfinite(value) else None,
        "skips_nothing": c.threshold.skips_nothing, "reason": c.threshold.reason,
    }  # fmt: skip


def _one_sweep(language: LanguageRun, measure: UncertaintyMeasure) -> dict[str, Any]:
    """U-HLM with ``measure`` at thresholds spread over the test text's observed uncertainty
    (`_SWEEP_POINTS` quantiles), and the most it skips at `GOAL_QUALITY` of the LLM's."""
    u = language.test.uncertainty(measure)
    points = np.unique(np.quantile(u, np.linspace(0.0, 1.0, _SWEEP_POINTS)))
    sweep = threshold_sweep(language.test, points, measure)
    good = sweep.quality_vs_llm >= GOAL_QUALITY
    return {
        "thresholds": sweep.thresholds.tolist(), "uplink_fraction": sweep.uplink_fraction.tolist(),
        "quality_vs_llm": sweep.quality_vs_llm.tolist(), "output_tv": sweep.output_tv.tolist(),
        "most_skipped_at_goal_quality": float(1.0 - sweep.uplink_fraction[good].min())
        if good.any() else 0.0,
    }  # fmt: skip


def _sweep(language: LanguageRun, config: HybridLmConfig, chosen: float) -> dict[str, Any]:
    """The threshold sweep of every uncertainty measure; ``chosen`` is the calibrated threshold
    of the scenario's measure."""
    return {
        "measure": config.uncertainty,
        "chosen": chosen if np.isfinite(chosen) else None,
        "goal_quality": GOAL_QUALITY,
        **{m: _one_sweep(language, m) for m in typing.get_args(UncertaintyMeasure)},
    }


def verification_service(scenario: Scenario, target: LanguageModel) -> EdgeServiceModel:
    """The edge's batching model of the target's verification: the scenario's profile, or
    measured on this machine (``hybrid_lm.edge_service``)."""
    config, deploy = scenario.hybrid_lm, scenario.deploy
    if config.edge_service == "measured":
        return measure_verification(
            target, max_batch=deploy.edge_max_batch, max_wait_s=deploy.edge_max_wait_s
        )
    return EdgeServiceModel(
        setup_s=config.edge_setup_s, per_item_s=config.edge_per_item_s,
        max_batch=deploy.edge_max_batch, max_wait_s=deploy.edge_max_wait_s,
        source="profile in the scenario (default: the shipped 2.89 M-parameter target's "
        "one-token verification measured on a 2-core x86-64 machine, one thread)",
    )  # fmt: skip


def run_schemes(scenario: Scenario, language: LanguageRun) -> HybridLmResult:
    """Every configured scheme: quality on the test half, tokens over the cell (module doc)."""
    config = scenario.hybrid_lm
    calibrations = _calibrations(language, config)
    schemes = {n: make_scheme(n, config, calibrations[n].threshold.value
                              if n in calibrations else None)
               for n in config.schemes}  # fmt: skip
    traces = {n: scheme_trace(s, language.test) for n, s in schemes.items()}
    device = draft_cost(scenario, language.draft)
    edge = verification_service(scenario, language.target)
    schedules: dict[str, TokenSchedule] = {
        n: _schedule(schemes[n], t, device.macs_per_token) for n, t in traces.items()
    }
    by_link, by_profile = _network(scenario, schedules, device, edge)
    main = link_label(config.link_quality_db[0])
    likelihood = {n: _likelihood(s, language, config, scenario.seed) for n, s in schemes.items()}
    llm_log_p = likelihood["llm"][0] if "llm" in likelihood else None
    figures: dict[str, dict[str, Any]] = {}
    for n, trace in traces.items():
        log_p, accepted = likelihood[n]
        figures[n] = {
            **by_link[main][n],
            "llm_calls_fraction": trace.uplink_fraction if schemes[n].uses_target_model else 0.0,
            "quality_vs_llm": quality_vs_llm(trace, language.test),
            "next_token_accuracy": next_token_accuracy(trace, language.test),
            "likelihood_vs_llm": float(np.exp(log_p - llm_log_p)) if llm_log_p is not None
            else None,
            "llm_log_likelihood_per_token": log_p, "acceptance_rate": accepted,
            "uplink_fraction": trace.uplink_fraction,
            "output_total_variation": float(trace.output_tv.mean()),
        }  # fmt: skip
    return HybridLmResult(
        schemes=figures, link_quality=by_link, profiles=by_profile,
        models=_models(scenario, language, device),
        corpus=dict(language.corpus),
        calibration={n: _calibration_record(c, config) for n, c in calibrations.items()},
        threshold_sweep=_sweep(language, config, calibrations["u_hlm"].threshold.value),
        exactness={n: float(t.output_tv.mean()) for n, t in traces.items()},
        edge_service={"setup_s": edge.setup_s, "per_item_s": edge.per_item_s,
                      "max_batch": edge.max_batch, "source": edge.source},
        main_link=main,
    )  # fmt: skip


def _models(scenario: Scenario, language: LanguageRun, device: DraftCost) -> dict[str, Any]:
    config, test = scenario.hybrid_lm, language.test
    draft_accuracy = float((test.draft_greedy == test.truth).mean())
    draft = _model_record(language.draft, config.draft, "draft", draft_accuracy)
    draft["mcu"] = device.record
    return {
        "draft": draft,
        "target": _model_record(language.target, config.target, "target", llm_accuracy(test)),
        "target_over_draft_parameters": language.target.parameter_count
        / max(1, language.draft.parameter_count),
        "greedy_agreement": float((test.draft_greedy == test.target_greedy).mean()),
        "mean_acceptance": float(test.acceptance.mean()),
    }
