"""The co-learning stage: run every configured scheme over the run's devices and 6G cell.

Schemes see the run's task (training data spread over the devices by the ``devices`` stage,
``colearning.eval_samples`` test frames for scoring), and the network stage's cell: each
device's mean-SNR uplink/downlink rate, slot, radio powers, and the target MCU's energy per
MAC. FedAvg, FedProx, FedGKT, split learning and SplitFed train tiny models from scratch; the
closed loop starts from a day-0 tiny model distilled on the server's own labelled frames.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from tinylarge.config.colearning_config import (
    SCHEME_NAMES,
    ColearningConfig,
    FederatedConfig,
    FedGKTConfig,
    SplitLearningConfig,
)
from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.aggregators import aggregator_names
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
from tinylarge.models.blocks import BlockModel
from tinylarge.models.evaluation import predict_logits
from tinylarge.net.mean_rate import MeanRateLink
from tinylarge.secure.robust import register_robust_aggregators
from tinylarge.secure.secagg import FixedPoint, SecAggPlus
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.security_costs import run_overhead, signed_updates
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import TINY_LABELS_ROLE, RunState
from tinylarge.sim.tiny_stages import mcu_profiles
from tinylarge.tiny.distill import distill


def check_colearning_config(config: ColearningConfig) -> None:
    """Fail early on settings the schema cannot check (registered names)."""
    register_robust_aggregators()
    if config.federated.aggregator not in aggregator_names():
        raise ValueError(
            f"colearning.federated.aggregator = {config.federated.aggregator!r} is not "
            f"registered; known: {', '.join(aggregator_names())}"
        )
    if len(set(config.schemes)) != len(config.schemes):
        raise ValueError(f"colearning.schemes lists a scheme twice: {config.schemes}")
    if config.secure_aggregation.enabled and {"fedavg", "fedprox"} & set(config.schemes):
        check_secure_aggregation(config)


def check_secure_aggregation(config: ColearningConfig) -> None:
    """Fail early when SecAgg+ cannot work with the federated settings: a robust aggregator
    or compressed updates (the server sees only the sum), a round too large for the modulus,
    or more dropouts than any neighbourhood can lose."""
    fl, sa = config.federated, config.secure_aggregation
    if fl.aggregator != "mean" or fl.compression != "none":
        raise ValueError(
            "colearning.secure_aggregation needs colearning.federated.aggregator = 'mean' and "
            f"compression = 'none' (the server sees only the sum), got {fl.aggregator!r} and "
            f"{fl.compression!r}"
        )
    n = fl.clients_per_round
    protocol = secure_sum_of(config)
    if n < 2 or n > protocol.encoding.max_clients:
        raise ValueError(
            f"colearning.federated.clients_per_round = {n} must lie in [2, "
            f"{protocol.encoding.max_clients}] with secure aggregation (sums of more clients "
            f"could wrap around 2**{sa.modulus_bits})"
        )
    size, threshold = protocol.shape(n)
    dropped = round(sa.dropout_fraction * n)
    if n - dropped < threshold:
        raise ValueError(
            f"colearning.secure_aggregation.dropout_fraction = {sa.dropout_fraction} drops "
            f"{dropped} of {n} clients per round, but rebuilding a client's secrets needs "
            f"{threshold} of its {size} neighbourhood members: every round would abort"
        )


def secure_sum_of(config: ColearningConfig, state: RunState | None = None) -> SecAggPlus:
    """SecAgg+ as ``colearning.secure_aggregation`` configures it, with device compute on the
    run's target MCU (none without ``state``)."""
    sa = config.secure_aggregation
    mcu = None
    if state is not None:
        mcu = mcu_profiles(state.scenario)[state.scenario.tiny.target_mcu]
    return SecAggPlus(
        num_shares=sa.num_shares,
        threshold_fraction=sa.threshold_fraction,
        encoding=FixedPoint(sa.clip_range, sa.quantization_levels, sa.modulus_bits),
        dropout_fraction=sa.dropout_fraction,
        mcu=mcu,
    )


def federated_data(state: RunState) -> FederatedData:
    """The task's arrays, the devices' partition and a seeded test subset for scoring."""
    task, config = state.require_task(), state.scenario.colearning
    if state.partition is None:
        raise ValueError("co-learning needs the devices stage's partition")
    n_eval = min(config.eval_samples, task.n_test)
    pick = np.sort(
        rng_for(state.scenario.seed, "colearning", "eval").permutation(task.n_test)[:n_eval]
    )
    return FederatedData(
        x_train=task.x_train,
        y_train=task.y_train,
        x_test=task.x_test[pick],
        y_test=task.y_test[pick],
        partition=state.partition,
        num_classes=task.num_classes,
    )


def link_budget(state: RunState) -> LinkBudget:
    """Each device's mean link to the edge and its radio/compute power (network stage), with
    the security layer's costs when ``security.protect_messages`` (fresh sessions: one budget
    per scheme)."""
    network = state.require_network()
    cells, settings = network.cells, network.settings
    fp = state.footprints[state.scenario.tiny.target_mcu]
    return LinkBudget.over(
        MeanRateLink.of_cells(cells, settings),
        joules_per_mac=float(fp.energy_j) / max(int(fp.macs), 1),
        overhead=run_overhead(state),
    )


def fresh_tiny(state: RunState, scheme: str) -> BlockModel:
    """A freshly initialised copy of the run's tiny architecture, seeded per ``scheme``."""
    model = state.require_model("tiny").manifest.build(
        seed=derive_seed(state.scenario.seed, "colearning", scheme)
    )
    if not isinstance(model, BlockModel):
        raise TypeError(f"co-learning needs a BlockModel tiny model, got {type(model).__name__}")
    return model


def _closed_loop(state: RunState, data: FederatedData, links: LinkBudget) -> ClosedLoop:
    scenario, task = state.scenario, state.require_task()
    config = scenario.colearning.closed_loop
    if config.server_samples >= task.n_train:
        raise ValueError(
            f"colearning.closed_loop.server_samples = {config.server_samples} must be below the "
            f"{task.n_train} training frames (the rest stream from the devices)"
        )
    rng = rng_for(scenario.seed, "colearning", "closed_loop", "server")
    server = np.sort(rng.permutation(task.n_train)[: config.server_samples])
    large = state.require_model("large").model
    distillation = scenario.tiny.distillation
    if config.start == "deployed":
        day0 = copy.deepcopy(state.require_model("tiny").model)
    else:
        day0 = fresh_tiny(state, "closed_loop")
        distill(
            day0,
            large,
            task.x_train[server],
            task.y_train[server],
            config.day0_training,
            temperature=distillation.temperature,
            alpha=distillation.alpha,
            seed=derive_seed(scenario.seed, "colearning", "closed_loop", "day0"),
            teacher_logits=predict_logits(large, task.x_train[server]),
        )
    fp = state.footprints[scenario.tiny.target_mcu]
    return ClosedLoop(
        day0,
        large,
        data,
        links,
        server_indices=server,
        class_names=task.class_names,
        distil_spec=config.update_training,
        forward_macs=int(fp.macs),
        frames_per_device=config.frames_per_device,
        update_every=config.update_every,
        target_offload=scenario.policies.target_offload,
        temperature=distillation.temperature,
        alpha=distillation.alpha,
        frame_bytes=scenario.network.traffic.message_bytes,
        reply_bytes=state.reply_bytes(),
        validation_fraction=config.validation_fraction,
        update_channel=signed_updates(state),
        seed=derive_seed(scenario.seed, "colearning", "closed_loop"),
    )


def _round_settings(
    section: FederatedConfig | FedGKTConfig | SplitLearningConfig, seed: int
) -> dict[str, Any]:
    """The keyword arguments every scheme of client rounds takes, from its config section."""
    return {
        "clients_per_round": section.clients_per_round,
        "local_epochs": section.local_epochs,
        "samples_per_client": section.samples_per_client,
        "batch_size": section.batch_size,
        "lr": section.learning_rate,
        "seed": seed,
    }


def build_scheme(name: str, state: RunState, data: FederatedData, links: LinkBudget) -> CoLearning:
    """The co-learning scheme ``name`` configured from the scenario."""
    config = state.scenario.colearning
    seed = derive_seed(state.scenario.seed, "colearning", name)
    if name in ("fedavg", "fedprox"):
        fl = config.federated
        common: dict[str, Any] = {
            **_round_settings(fl, seed),
            "lr_decay": fl.lr_decay,
            "server_momentum": fl.server_momentum,
            "aggregator": fl.aggregator,
            "selection": fl.selection,
            "compression": fl.compression,
            "topk_fraction": fl.topk_fraction,
            "ray_workers": fl.ray_workers,
        }
        if config.secure_aggregation.enabled:
            common["secure_sum"] = secure_sum_of(config, state)
        model = fresh_tiny(state, name)
        if name == "fedprox":
            return FedProx(model, data, links, mu=fl.prox_mu, **common)
        return FedAvg(model, data, links, **common)
    if name == "fedgkt":
        gkt = config.fedgkt
        return FedGKT(
            data,
            links,
            client_widths=tuple(gkt.client_widths),
            feature_blocks=gkt.feature_blocks,
            server_width=gkt.server_width,
            server_blocks=gkt.server_blocks,
            server_epochs=gkt.server_epochs,
            temperature=gkt.temperature,
            beta=gkt.beta,
            feature_bits=gkt.feature_bits,
            **_round_settings(gkt, seed),
        )
    if name in ("split_learning", "splitfed"):
        sl = config.split
        cls = SplitFed if name == "splitfed" else SplitLearning
        return cls(
            fresh_tiny(state, name),
            data,
            links,
            cut=sl.cut,
            activation_bits=sl.activation_bits,
            gradient_bits=sl.gradient_bits,
            **_round_settings(sl, seed),
        )
    if name == "closed_loop":
        return _closed_loop(state, data, links)
    raise ValueError(f"unknown co-learning scheme {name!r}; known: {', '.join(SCHEME_NAMES)}")


def scheme_summary(records: list[RoundRecord]) -> dict[str, Any]:
    """Per-round lists (the metrics contract) and totals of one scheme's run."""
    rounds = [r.to_dict() for r in records]
    keys = list(rounds[0])
    per_round = {k: [r.get(k) for r in rounds] for k in keys if k != "round"}
    return {
        "rounds": len(records),
        **per_round,
        "final_accuracy": records[-1].accuracy,
        "total_bytes_up": int(sum(r.bytes_up for r in records)),
        "total_bytes_down": int(sum(r.bytes_down for r in records)),
        "total_airtime_s": float(sum(r.airtime_s for r in records)),
        "total_device_energy_j": float(sum(r.device_energy_j for r in records)),
    }


def secure_aggregation_summary(summary: dict[str, Any], config: ColearningConfig) -> dict[str, Any]:
    """The ``secure_aggregation`` metrics of a FedAvg / FedProx run from its per-round lists:
    client-rounds, dropouts, protocol bytes per client (mean over client-rounds, up + down,
    the masked update included) beside the plain upload they replace, and the largest
    difference of a secure aggregate from plain FedAvg over the same clients."""
    sa = config.secure_aggregation
    clients = np.asarray(summary["clients"], dtype=np.float64)

    def per_client(key: str) -> float:
        return float(np.dot(summary[key], clients) / clients.sum())

    return {
        "clients": int(clients.sum()),
        "dropped": int(sum(summary["secure_aggregation_dropped"])),
        "bytes_per_client": per_client("secure_aggregation_bytes_per_client"),
        "plain_bytes_per_client": per_client("secure_aggregation_plain_bytes_per_client"),
        "max_abs_error_vs_plain": float(max(summary["secure_aggregation_max_abs_error"])),
        "quantization_step": FixedPoint(
            sa.clip_range, sa.quantization_levels, sa.modulus_bits
        ).step,
        "num_shares": sa.num_shares,
        "threshold_fraction": sa.threshold_fraction,
        "dropout_fraction": sa.dropout_fraction,
    }


def run_scheme(
    name: str,
    state: RunState,
    ctx: StageContext,
    *,
    rounds: int | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
) -> dict[str, Any]:
    """Build scheme ``name``, run it, and return its `scheme_summary` (+ references)."""
    config = state.scenario.colearning
    data, links = federated_data(state), link_budget(state)
    scheme = build_scheme(name, state, data, links)
    n = rounds or (config.closed_loop.rounds if name == "closed_loop" else config.rounds)

    def progress(record: RoundRecord) -> None:
        ctx.reporter.training(f"colearn {name}", record.round, n, 1, 1, record.accuracy)
        if on_round is not None:
            on_round(record)

    summary = scheme_summary(scheme.run(n, progress=progress))
    if isinstance(scheme, FedAvg) and scheme.secure_sum is not None:
        summary["secure_aggregation"] = secure_aggregation_summary(summary, config)
    if links.overhead.enabled:
        summary["security"] = links.ledger.to_dict()
    central_role = TINY_LABELS_ROLE if TINY_LABELS_ROLE in state.models else "tiny"
    if name in ("fedavg", "fedprox") and central_role in state.models:
        # the same tiny model trained centrally on all training frames from labels alone
        central = predict_logits(state.models[central_role].model, data.x_test)
        summary["centralized_accuracy"] = float((central.argmax(1) == data.y_test).mean())
    if isinstance(scheme, ClosedLoop):
        summary["accuracy_target_missed_rounds"] = scheme.accuracy_target_missed_rounds
        summary["day0_accuracy"] = summary["accuracy"][0]
        summary["day0_offload_fraction"] = summary["offload_fraction"][0]
    return summary


def colearning_stage(state: RunState, ctx: StageContext) -> str:
    """Run every scheme of ``colearning.schemes``; results in ``state.colearning``."""
    config = state.scenario.colearning
    if not config.enabled:
        return "disabled"
    check_colearning_config(config)
    for name in config.schemes:
        try:
            state.colearning[name] = run_scheme(name, state, ctx)
        except CannotFitError as error:  # e.g. no device can reach the server
            state.skip(f"colearning.{name}", str(error))
            continue
        missed = state.colearning[name].get("accuracy_target_missed_rounds")
        if missed:
            state.warn(
                f"colearning.{name}",
                f"in round(s) {', '.join(map(str, missed))} no threshold let the pushed model "
                "keep the day-0 cascade's validation accuracy; it used the most accurate one",
            )
    parts = [f"{n} {s['final_accuracy']:.1%}" for n, s in state.colearning.items()]
    loop = state.colearning.get("closed_loop")
    if loop is not None:
        parts.append(
            f"closed loop offload {loop['offload_fraction'][0]:.0%} -> "
            f"{loop['offload_fraction'][-1]:.0%}"
        )
    if not parts:
        return "every scheme was skipped"
    return "final accuracy: " + ", ".join(parts)
