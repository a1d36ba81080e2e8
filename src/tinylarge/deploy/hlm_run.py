"""`run_hybrid_lm(scenario, ...)`: the hybrid language model deployed on this machine (what
`tinylarge deploy` does for a text scenario): a Mosquitto (unless a broker is given), the edge
verifying with the target model and the fleet drafting with the draft model, as separate
processes (`tinylarge.deploy.hlm_processes`), every scheme in turn; then ``metrics.json``.

The steps: the prompts and U-HLM's thresholds (given, or from the simulator's
``language_models`` stage: held-out text scored by both models, the threshold calibrated as
the simulator does), device and edge identities, with ``emulate_link`` each device's radio and
the draft model's MCU time (`tinylarge.deploy.hlm_link`), the broker, the edge, the fleet;
every process is stopped whatever happens. An edge that dies on its own is recorded
(``deploy.edge_exit``); its devices' tokens then time out, none is lost.

``metrics.json``::

    hybrid_lm_deploy.<scheme>.{tokens_per_s, p50_token_latency_s, p99_token_latency_s,
        uplink_fraction, bytes_up_per_token, bytes_down_per_token,
        transport_bytes_up_per_token, transport_bytes_down_per_token, lost, timed_out, ...}
    deploy.{task, devices, tokens_per_device, schemes, thresholds (None: skips nothing),
        broker, transport, broker_refused, broker_refused_sources, settings, edge,
        fleet_events, edge_exit, emulate_link, transport_s, round_trip_split,
        sim_vs_real.<scheme> | sim_vs_real_skipped}

``deploy.transport`` is what the processes connected over: ``mqtt-tls`` (the scenario's
``[deploy] transport`` by default: the run's broker is locked down, with the language-model
topics of this run in its ACL, and the edge and the devices connect with their certificates)
or ``mqtt``; a broker given by URL is used as it says (``mqtts://``: TLS).
``deploy.broker_refused`` counts what the broker refused (`tinylarge.deploy.result.broker_refused`:
from the run's own broker's log; None for a broker given by URL).

``deploy.transport_s`` is what the message transport (the broker's two relays, both clients'
stacks) adds to a token's round trip beyond the radio: percentiles (s) of the device's round
trip minus the edge's time for the same request, over the tokens answered on their only
request (`tinylarge.deploy.hlm_records.round_trip_split`, whose figures are
``deploy.round_trip_split``; both None when the edge did not stop cleanly).
``deploy.sim_vs_real.<scheme>`` predicts with that scheme's median transport added (half to
the backhaul each way; the median over all schemes when the scheme had no round trip) and
holds the radio alone's prediction under ``without_transport`` (`tinylarge.deploy.hlm_twin`).
Its messages are framed as the deployment's: MQTT packets on this run's language-model topics
(not the default ``tinylarge/lm``) over the transport the processes connected with, so that
``transport_bytes_*_per_token`` compare to the byte (`tinylarge.secure.transport`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinylarge.config import Scenario
from tinylarge.config.deploy_config import DeployConfig
from tinylarge.config.hybrid_lm_config import HYBRID_SCHEMES, HybridSchemeName
from tinylarge.deploy.broker import Broker, parse_broker_url
from tinylarge.deploy.files import (
    ANSWERED_FILE,
    BROKER_DIR,
    FLEET_LOG,
    METRICS_FILE,
    SERVE_LOG,
    STARTED_FILE,
)
from tinylarge.deploy.hlm_link import TokenLinkPlan, plan_token_links
from tinylarge.deploy.hlm_processes import HlmSpec, save_link_plans
from tinylarge.deploy.hlm_protocol import lm_topics
from tinylarge.deploy.hlm_records import (
    TokenRecords,
    load_token_records,
    round_trip_split,
    token_metrics,
)
from tinylarge.deploy.hlm_twin import TwinLink, scheme_sim_vs_real
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.progress import DeployProgress, SilentProgress
from tinylarge.deploy.result import broker_refused, edge_stats
from tinylarge.deploy.runner import DeployError
from tinylarge.deploy.supervisor import EdgeExit, EdgeProcess, FleetProcess
from tinylarge.integrate.hybrid_lm.quality import calibrate
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, SpeculativeScheme, make_scheme
from tinylarge.integrate.hybrid_lm.wire import (
    ENVELOPE_BYTES,
    llm_request_bytes,
    reply_bytes,
    request_bytes,
)
from tinylarge.models.cache import ModelCache
from tinylarge.models.text.checkpoints import load_language_model
from tinylarge.seeding import rng_for
from tinylarge.sim.hybrid_lm_schemes import draft_cost, token_cells
from tinylarge.sim.hybrid_lm_stage import check_text_config, language_models_stage
from tinylarge.sim.net_stages import link_settings
from tinylarge.sim.progress import SilentReporter
from tinylarge.sim.security_costs import message_overhead
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState

#: Files of a text deployment's output directory besides `tinylarge.deploy.files`'.
SPEC_FILE, TOKEN_RECORDS_FILE, LINKS_FILE = "hlm_spec.json", "token_records.npz", "links.npz"
#: Rough wall time of one token of one scheme, for the progress bar only, s.
_TOKEN_S_GUESS = 0.02


@dataclass(frozen=True)
class HybridLmDeployResult:
    """What a text deployment measured.

    Attributes
    ----------
    metrics : dict
        As written to ``metrics.json`` (module doc).
    records : dict of scheme -> TokenRecords
    out_dir, metrics_path, records_path : Path
    edge_exit : EdgeExit or None
        How the edge ended if nobody asked it to, else None.
    """

    metrics: dict[str, Any]
    records: dict[str, TokenRecords]
    out_dir: Path
    metrics_path: Path
    records_path: Path
    edge_exit: EdgeExit | None


def run_hybrid_lm(
    scenario: Scenario,
    *,
    run_dir: str | Path,
    devices: int | None = None,
    tokens_per_device: int | None = None,
    schemes: Sequence[HybridSchemeName] | None = None,
    broker: str | None = None,
    emulate_link: bool = False,
    thresholds: dict[str, float] | None = None,
    prompts: Sequence[Sequence[int]] | None = None,
    retry_s: float = 0.1,
    progress: DeployProgress | None = None,
) -> HybridLmDeployResult:
    """Deploy the hybrid language model of a text ``scenario`` and measure every scheme.

    Parameters
    ----------
    scenario : Scenario
        ``task.name = "text"``; its ``[hybrid_lm]`` names the models, schemes and defaults,
        its ``[deploy]`` the edge's batching, the reply deadline and the QoS, its
        ``[network]`` and ``tiny.target_mcu`` the emulated link.
    run_dir : path
        Output directory (created): metrics, records, identities, logs.
    devices, tokens_per_device : int, optional
        Device agents, and tokens each generates per scheme (default: ``[hybrid_lm]``'s).
    schemes : sequence of str, optional
        Run in this order (default: ``[hybrid_lm] schemes``).
    broker : str, optional
        ``mqtt://HOST:PORT`` of a running broker, ``mqtts://HOST:PORT`` of a locked-down one
        (certificates from ``run_dir``); None: start a Mosquitto for the run, locked down
        unless the scenario's ``[deploy] transport`` is ``mqtt``.
    emulate_link : bool
        Delay each device's messages by its 6G link and its drafting by the MCU's time, as
        the simulator models them, and set the simulator's prediction beside the measurement
        (``deploy.sim_vs_real``).
    thresholds : dict, optional
        Skip thresholds of ``u_hlm`` / ``cu_hlm``; missing ones are calibrated on held-out
        text as the simulator does.
    prompts : sequence of sequence of int, optional
        Device ``i`` starts from ``prompts[i % len(prompts)]``; None: the first tokens of
        held-out documents.
    retry_s : float
        A request without a reply is re-sent after this long, s.
    progress : DeployProgress, optional
        Receives the run's events (default: silent).

    Raises
    ------
    ValueError
        Not a text scenario, a bad argument, or models that do not exist.
    DeployError
        The broker, the edge or the fleet failed.
    """
    out_dir = Path(run_dir)
    spec, twin = _prepare(
        scenario, out_dir, devices, tokens_per_device, schemes, broker, emulate_link,
        thresholds, prompts, retry_s,
    )  # fmt: skip
    spec, edge, broker_log = _supervise(spec, out_dir, progress or SilentProgress())
    return _collect(scenario, spec, out_dir, edge, twin, broker_log)


def _check(scenario: Scenario, devices: int, tokens: int, schemes: list[HybridSchemeName]) -> None:
    if scenario.task.name != "text":
        raise ValueError(
            f"the hybrid language model deploys a text scenario (task.name = 'text'), got "
            f"task.name = {scenario.task.name!r}"
        )
    if devices < 1 or tokens < 1 or not schemes:
        raise ValueError(
            f"devices and tokens_per_device must be >= 1 and schemes non-empty, got {devices}, "
            f"{tokens}, {schemes}"
        )
    unknown = [s for s in schemes if s not in HYBRID_SCHEMES]
    if unknown or len(set(schemes)) != len(schemes):
        raise ValueError(
            f"schemes must be distinct names among {', '.join(HYBRID_SCHEMES)}, got {schemes}"
        )
    check_text_config(scenario)


def _prepare(
    scenario: Scenario,
    out_dir: Path,
    devices: int | None,
    tokens: int | None,
    schemes: Sequence[HybridSchemeName] | None,
    broker: str | None,
    emulate_link: bool,
    thresholds: dict[str, float] | None,
    prompts: Sequence[Sequence[int]] | None,
    retry_s: float,
) -> tuple[HlmSpec, TwinLink | None]:
    """The checked spec of the run (written beside the output), and the twin's link."""
    config = scenario.hybrid_lm
    n, t = devices or config.devices, tokens or config.tokens_per_device
    names = list(schemes or config.schemes)
    _check(scenario, n, t, names)
    if broker is not None:
        parse_broker_url(broker)
    if not retry_s > 0:
        raise ValueError(f"retry_s must be > 0, got {retry_s}")
    prompt_ids, found = _language(scenario, names, dict(thresholds or {}), prompts)
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = DeployLayout(out_dir)
    layout.edge()
    layout.enroll(n)
    built = {s: make_scheme(s, config, found.get(s)) for s in names}
    prefix, twin = f"tinylarge-{os.getpid()}-{secrets.token_hex(3)}", None
    if emulate_link:
        framing = _Framing(lm_topics(prefix).prefix, _connected_settings(scenario, broker))
        twin = _plan_links(scenario, built, n, t, out_dir / LINKS_FILE, framing)
    spec = HlmSpec(
        run_dir=str(out_dir), broker=broker or "", prefix=prefix,
        draft=config.draft, target=config.target,
        hybrid=config.model_dump(), schemes=names, thresholds=found,
        deploy=scenario.deploy.model_dump(), devices=n, tokens_per_device=t,
        prompts=[list(map(int, p)) for p in prompt_ids], seed=scenario.seed, retry_s=retry_s,
        links=str(out_dir / LINKS_FILE) if emulate_link else None,
        records=str(out_dir / TOKEN_RECORDS_FILE), started_file=str(out_dir / STARTED_FILE),
    )  # fmt: skip
    spec.save(out_dir / SPEC_FILE)
    return spec, twin


def _language(
    scenario: Scenario,
    names: list[HybridSchemeName],
    thresholds: dict[str, float],
    prompts: Sequence[Sequence[int]] | None,
) -> tuple[list[list[int]], dict[str, float]]:
    """The prompts and the thresholds of the schemes that skip: those given, the others from
    the simulator's ``language_models`` stage (calibrated on its calibration half)."""
    skipping = [s for s in names if s in ("u_hlm", "cu_hlm")]
    need = [s for s in skipping if s not in thresholds]
    if prompts is not None and not need:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("prompts must be non-empty, each of at least one token")
        return [list(map(int, p)) for p in prompts], {s: thresholds[s] for s in skipping}
    state = RunState(scenario=scenario)
    language_models_stage(state, StageContext(ModelCache(enabled=False), SilentReporter()))
    language = state.language
    if language is None:
        raise RuntimeError("the 'language_models' stage left no scored text")
    config = scenario.hybrid_lm
    for s in need:
        fit = calibrate(language.calibration, config.uncertainty, config.rejection_tolerance,
                        truncated=s == "cu_hlm")  # fmt: skip
        thresholds[s] = fit.threshold.value
    chosen = language.prompts if prompts is None else [list(map(int, p)) for p in prompts]
    return chosen, {s: thresholds[s] for s in skipping}


def _request_bytes(scheme: HybridScheme, vocab: int) -> int:
    """A request's payload with no kept tokens (envelope included), bytes: what the link plan
    sends per token (LLM only's request; a scheme that sends nothing never uses its plan's
    radio)."""
    if not isinstance(scheme, SpeculativeScheme):
        return ENVELOPE_BYTES + llm_request_bytes(0, vocab)
    codec = scheme.codec
    kept = None if codec.kind == "full" else min(codec.top_k, vocab)
    return ENVELOPE_BYTES + request_bytes(0, codec.payload_bytes(vocab, kept), vocab)


@dataclass(frozen=True)
class _Framing:
    """How the run's messages travel: under which topic prefix (the language-model topics of
    the run's own prefix, `lm_topics`) and with which ``[deploy]`` settings (transport, QoS)."""

    prefix: str
    settings: DeployConfig


def _connected_settings(scenario: Scenario, broker: str | None) -> DeployConfig:
    """The scenario's ``[deploy]`` with the transport the processes will connect over: what a
    given broker's URL says (``mqtts://``: TLS), else the scenario's (the run's own broker)."""
    if broker is None:
        return scenario.deploy
    transport = "mqtt-tls" if parse_broker_url(broker).tls else "mqtt"
    return scenario.deploy.model_copy(update={"transport": transport})


def _plan_links(
    scenario: Scenario,
    schemes: dict[HybridSchemeName, HybridScheme],
    n: int,
    tokens: int,
    path: Path,
    framing: _Framing,
) -> TwinLink:
    """Each scheme's link plan over the scenario's cell (saved to ``path``); the twin's link.

    The devices are the simulator's (`token_cells`: ``n`` of them, the first link quality),
    the draft's time its price on ``tiny.target_mcu`` in the simulator (`draft_cost`), each
    message's bytes those of the deployment's topics and transport (``framing``), so that the
    simulator's ``transport_bytes_*`` are the deployment's to the byte."""
    config, net = scenario.hybrid_lm, scenario.network
    draft = load_language_model(config.draft, role="draft")
    cost = draft_cost(scenario, draft)  # the simulator's price of a drafted token
    draft_s = cost.macs_per_token * cost.seconds_per_mac
    cells = token_cells(scenario, net.profile, config.link_quality_db[0], devices=n)
    overhead = message_overhead(scenario, n, deploy=framing.settings, prefix=framing.prefix)
    settings, vocab = link_settings(net), draft.vocab_size
    plans: dict[str, TokenLinkPlan] = {
        name: plan_token_links(
            rng_for(scenario.seed, "hybrid_lm", "deploy_links", name),
            cells,
            settings,
            tokens_per_device=tokens,
            draft_s_per_token=draft_s,
            request_bytes=_request_bytes(scheme, vocab),
            reply_bytes=ENVELOPE_BYTES + reply_bytes(vocab),
            overhead=overhead,
        )
        for name, scheme in schemes.items()
    }
    save_link_plans(plans, path)
    return TwinLink(cells, settings, overhead, cost.macs_per_token, cost.seconds_per_mac,
                    cost.joules_per_mac)  # fmt: skip


def _start_broker(spec: HlmSpec, out_dir: Path) -> Broker:
    """The run's own Mosquitto, started: locked down (this run's language-model topics in its
    ACL) unless the ``[deploy] transport`` is plain ``mqtt``."""
    security = None
    if spec.settings.transport == "mqtt-tls":
        prefix = lm_topics(spec.prefix).prefix
        security = DeployLayout(out_dir).broker_security(prefixes=(prefix,))
    broker = Broker(out_dir / BROKER_DIR, security=security)
    try:
        broker.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        raise DeployError(str(error)) from None
    return broker


def _supervise(
    spec: HlmSpec, out_dir: Path, progress: DeployProgress
) -> tuple[HlmSpec, EdgeProcess, dict[str, int] | None]:
    """Broker, edge and fleet: run the fleet to its end, then stop them all (every step runs
    even if one fails: no broker or edge left behind); the spec with its broker, the edge's
    process, and the refusals in the broker's log (None: a broker given by URL)."""
    broker = None
    if not spec.broker:
        broker = _start_broker(spec, out_dir)
        spec = replace(spec, broker=broker.address.url)
        spec.save(out_dir / SPEC_FILE)
    command = [sys.executable, "-m", "tinylarge.deploy.hlm_processes"]
    spec_path = str(out_dir / SPEC_FILE)
    layout = DeployLayout(out_dir)
    edge = EdgeProcess([*command, "edge", spec_path], layout.edge_state, out_dir / SERVE_LOG)
    fleet = FleetProcess([*command, "fleet", spec_path], out_dir / FLEET_LOG,
                         out_dir / STARTED_FILE)  # fmt: skip
    guess_s = _TOKEN_S_GUESS * spec.tokens_per_device * len(spec.schemes)
    try:
        try:
            edge.start()
        except RuntimeError as error:
            raise DeployError(str(error)) from None
        progress.edge_ready(edge.pid or 0, lm_topics(spec.prefix))
        progress.message(
            f"edge up; {spec.devices} devices x {spec.tokens_per_device} tokens, schemes "
            f"{', '.join(spec.schemes)} ..."
        )
        try:
            code = fleet.run(guess_s, on_tick=lambda s: progress.fleet_running(s, guess_s),
                             on_schedule_start=progress.schedule_started)  # fmt: skip
        finally:
            progress.fleet_finished()
        if code != 0:
            raise DeployError(f"the fleet exited with code {code}; its log:\n{fleet.log_tail()}")
    finally:
        with contextlib.ExitStack() as cleanup:  # run in reverse: the devices first
            if broker is not None:
                cleanup.callback(broker.stop)
            cleanup.callback(edge.stop)
            cleanup.callback(fleet.stop)
    return spec, edge, None if broker is None else broker.log_counts()


def _collect(
    scenario: Scenario,
    spec: HlmSpec,
    out_dir: Path,
    edge: EdgeProcess,
    twin: TwinLink | None,
    broker_log: dict[str, int] | None,
) -> HybridLmDeployResult:
    """``metrics.json`` from the fleet's records, the edge's counters and the twin."""
    records_path = Path(spec.records)
    records = load_token_records(records_path)
    events = json.loads(Path(f"{spec.records}.events.json").read_text())
    layout = DeployLayout(out_dir)
    stats = edge_stats(layout)
    split = None
    if (layout.edge_state / ANSWERED_FILE).is_file():
        ids = [identity.device_id for identity in layout.enroll(spec.devices)]
        split = round_trip_split(records, ids, layout.edge_state / ANSWERED_FILE)
    section: dict[str, Any] = {
        "task": "text", "devices": spec.devices, "tokens_per_device": spec.tokens_per_device,
        "schemes": spec.schemes, "broker": spec.broker,
        "transport": "mqtt-tls" if parse_broker_url(spec.broker).tls else "mqtt",
        **broker_refused(broker_log, None),
        "thresholds": {k: v if math.isfinite(v) else None for k, v in spec.thresholds.items()},
        "settings": spec.deploy, "edge": stats, "fleet_events": events,
        "edge_exit": None if edge.died is None else edge.died.metrics(
            events.get("started_unix", math.nan)
        ),
        "emulate_link": twin is not None,
        "transport_s": None if split is None else split["transport_s"],
        "round_trip_split": split,
    }  # fmt: skip
    if twin is not None and stats:
        transport = _transport_by_scheme(split, spec.schemes)
        section["sim_vs_real"] = _sim_vs_real(scenario, spec, records, twin, stats, transport)
    elif twin is not None:
        section["sim_vs_real_skipped"] = (
            "the edge wrote no counters (it did not stop cleanly): no measured service time "
            "to simulate it with"
        )
    metrics = {
        "hybrid_lm_deploy": {name: token_metrics(r) for name, r in records.items()},
        "deploy": section,
    }
    metrics_path = out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return HybridLmDeployResult(metrics, records, out_dir, metrics_path, records_path,
                                edge.died)  # fmt: skip


def _transport_by_scheme(split: dict[str, Any] | None, schemes: Sequence[str]) -> dict[str, float]:
    """The transport each scheme's prediction adds, s: the median of its own tokens', else of
    all tokens' (a scheme that sent nothing), else 0 (nothing measured)."""
    if split is None:
        return dict.fromkeys(schemes, 0.0)
    overall = split["transport_s"]["p50"] or 0.0
    by_scheme = split["by_scheme"]
    out = {}
    for name in schemes:
        own = by_scheme.get(name, {}).get("transport_s", {}).get("p50")
        out[name] = max(0.0, overall if own is None else own)
    return out


def _sim_vs_real(
    scenario: Scenario,
    spec: HlmSpec,
    records: dict[str, TokenRecords],
    twin: TwinLink,
    stats: dict[str, Any],
    transport_s: dict[str, float],
) -> dict[str, Any]:
    """``deploy.sim_vs_real`` per scheme (`tinylarge.deploy.hlm_twin`), each with its
    ``transport_s`` added."""
    vocab = load_language_model(spec.draft, role="draft").vocab_size
    schemes = spec.make_schemes()
    return {
        name: scheme_sim_vs_real(
            rng_for(scenario.seed, "hybrid_lm", "deploy_twin", name),
            r,
            twin,
            reply_bytes=ENVELOPE_BYTES + reply_bytes(vocab),
            uses_draft=schemes[name].uses_draft_model,
            service_fit=stats.get("service_fit"),
            settings=spec.settings,
            transport_s=transport_s[name],
        )
        for name, r in records.items()
    }
