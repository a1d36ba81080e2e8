"""The security stage: what the security layer costs and what it stops.

- Wire format: per-message overhead, handshake and bundle sizes, and a mutation campaign of
  ``security.fuzz_messages`` messages (`tinylarge.secure.fuzz`): none may be accepted.
- Aggregation under attack: FedAvg (the ``colearning.federated`` settings) on an IID split of
  the training frames over the run's devices, for every attack x malicious fraction x
  aggregator of ``[security]``; malicious devices are a seeded random subset of all devices.
- Differential privacy (``security.dp``): DP-FedAvg with clipping and Gaussian noise, and its
  epsilon at ``dp_delta`` from the RDP accountant.
"""

from __future__ import annotations

import math
from typing import Any

from tinylarge.config.security_config import SecurityConfig
from tinylarge.data.partition import partition_iid
from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.aggregators import aggregator_names
from tinylarge.integrate.colearning.contract import FederatedData
from tinylarge.integrate.colearning.fedavg import FedAvg
from tinylarge.secure.attacks import Attack
from tinylarge.secure.bundle import bundle_overhead_bytes, sign_bundle
from tinylarge.secure.costs import bundle_cost, protocol_overhead, run_device_id
from tinylarge.secure.fuzz import fuzz_wire
from tinylarge.secure.handshake import DeviceHandshake, server_accept
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.privacy import dp_epsilon
from tinylarge.secure.robust import register_robust_aggregators
from tinylarge.secure.wire import overhead_bytes
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.colearning_stages import federated_data, fresh_tiny, link_budget
from tinylarge.sim.stage_results import AttackRow, SecurityResult
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState
from tinylarge.sim.tiny_stages import mcu_profiles
from tinylarge.tiny.model_file import to_bytes


def check_security_config(config: SecurityConfig) -> None:
    """Fail early on names and fractions the schema cannot check."""
    register_robust_aggregators()
    unknown = [a for a in config.aggregators if a not in aggregator_names()]
    if unknown:
        raise ValueError(
            f"security.aggregators {unknown} are not registered; known: "
            f"{', '.join(aggregator_names())}"
        )
    bad = [f for f in config.malicious_fractions if not 0.0 <= f < 1.0]
    if bad:
        raise ValueError(f"security.malicious_fractions must lie in [0, 1), got {bad}")


def wire_costs(state: RunState) -> dict[str, Any]:
    """Bytes the layer adds (per message, per handshake, per model bundle) and what each costs
    a device on the target MCU (`tinylarge.secure.costs`)."""
    scenario = state.scenario
    n = scenario.devices.count
    device, server = Identity.generate(run_device_id(n - 1, n)), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    hello = DeviceHandshake(device, scenario.security.aead).hello()
    reply, _ = server_accept(hello, server, registry)
    model = to_bytes(state.tiny_int8) if state.tiny_int8 is not None else bytes(4096)
    target = scenario.tiny.target_mcu
    mcu = mcu_profiles(scenario)[target]
    bundle = sign_bundle(model, 1, target, server)
    costs = protocol_overhead(device.device_id, mcu, scenario.security.aead)
    check = bundle_cost(len(model), target, mcu)
    frame = scenario.network.traffic.message_bytes
    return {
        "aead": scenario.security.aead,
        "session_lifetime_s": scenario.security.session_lifetime_s,
        "target_mcu": target,
        "message_overhead_bytes": overhead_bytes(device.device_id),
        "device_id_bytes": len(device.device_id),
        "handshake_bytes": {"hello": len(hello), "reply": len(reply)},
        "bundle_overhead_bytes": bundle_overhead_bytes(bundle),
        "model_bytes": len(model),
        "device_crypto_j_per_byte": costs.device_j_per_byte,
        "device_crypto_j_per_frame_message": float(costs.device_energy_j(frame)),
        "handshake_device_j": costs.session_device_j,
        "handshake_device_s": costs.session_device_s,
        "bundle_check_device_j": check.verify_j,
        "bundle_check_device_s": check.verify_s,
    }


def _fedavg(state: RunState, data: FederatedData, **extra: Any) -> FedAvg:
    fl, config = state.scenario.colearning.federated, state.scenario.security
    return FedAvg(
        fresh_tiny(state, "security"),
        data,
        link_budget(state),
        clients_per_round=config.clients_per_round,
        local_epochs=fl.local_epochs,
        samples_per_client=config.samples_per_client,
        batch_size=fl.batch_size,
        lr=fl.learning_rate,
        lr_decay=fl.lr_decay,
        seed=derive_seed(state.scenario.seed, "security", "fedavg"),
        **extra,
    )


def attack_study(
    state: RunState, data: FederatedData, ctx: StageContext | None = None
) -> list[AttackRow]:
    """Final test accuracy of FedAvg for every attack x fraction x aggregator (fraction 0 once
    per aggregator, as ``attack = "none"``)."""
    config = state.scenario.security
    order = rng_for(state.scenario.seed, "security", "malicious").permutation(data.n_devices)
    rows: list[AttackRow] = []
    settings = [("none", 0.0)] + [
        (a, f) for a in config.attacks for f in config.malicious_fractions if f > 0
    ]
    total = len(settings) * len(config.aggregators)
    for attack, fraction in settings:
        bad = order[: round(fraction * data.n_devices)]
        for aggregator in config.aggregators:
            extra: dict[str, Any] = {"aggregator": aggregator}
            if bad.size:
                extra["attack"] = Attack(attack, config.attack_scale.get(attack, 1.0))
                extra["malicious"] = bad
            records = _fedavg(state, data, **extra).run(config.rounds)
            rows.append(AttackRow(attack, fraction, aggregator, records[-1].accuracy))
            if ctx is not None:  # one progress step per FedAvg run of the grid
                ctx.reporter.training("attack grid", len(rows), total, 1, 1, records[-1].accuracy)
    return rows


def dp_study(state: RunState, data: FederatedData) -> dict[str, Any]:
    """DP-FedAvg's final accuracy and its (epsilon, delta)."""
    config = state.scenario.security
    records = _fedavg(
        state, data, dp_clip=config.dp_clip, dp_noise_multiplier=config.dp_noise_multiplier
    ).run(config.rounds)
    q = min(1.0, config.clients_per_round / data.n_devices)
    epsilon, order = dp_epsilon(config.dp_noise_multiplier, q, config.rounds, config.dp_delta)
    return {
        "accuracy": records[-1].accuracy,
        "epsilon": epsilon,
        "delta": config.dp_delta,
        "rdp_order": order,
        "clip": config.dp_clip,
        "noise_multiplier": config.dp_noise_multiplier,
        "sample_rate": q,
        "rounds": config.rounds,
    }


def _summary(config: SecurityConfig, result: SecurityResult) -> str:
    """The stage's terminal line: fuzz campaign, overhead, the first attack's worst case, DP."""
    rows, fuzz = result.aggregation_under_attack or [], result.fuzz
    clean = {r.aggregator: r.accuracy for r in rows if r.attack == "none"}
    worst = [
        f"{r.aggregator} {100 * (r.accuracy - clean[r.aggregator]):+.1f} pp"
        for r in rows
        if config.attacks
        and r.attack == config.attacks[0]
        and math.isclose(r.malicious_fraction, max(config.malicious_fractions))
    ]  # the summary names the first attack only; the metrics hold every row
    attack = f"{config.attacks[0]} at {max(config.malicious_fractions):.0%}" if worst else ""
    return (
        f"fuzz: {fuzz.messages:,} mutated messages, {fuzz.accepted} accepted; "
        f"overhead {result.wire['message_overhead_bytes']} B/message"
        + (f"; under {attack}: " + ", ".join(worst) if worst else "")
        + (f"; DP epsilon {result.dp['epsilon']:.2f}" if result.dp is not None else "")
    )


def security_stage(state: RunState, ctx: StageContext) -> str:
    """Wire costs, fuzz campaign, aggregation under attack, DP; results in ``state.security``."""
    config = state.scenario.security
    if not config.enabled:
        return "disabled"
    check_security_config(config)
    wire = wire_costs(state)
    fuzz = fuzz_wire(config.fuzz_messages, derive_seed(state.scenario.seed, "security", "fuzz"))
    if fuzz.accepted:
        raise RuntimeError(f"the fuzz campaign got {fuzz.accepted} mutated messages accepted")
    task = state.require_task()
    iid = partition_iid(task.n_train, state.scenario.devices.count,
                        rng_for(state.scenario.seed, "security", "partition"))  # fmt: skip
    base = federated_data(state)
    data = FederatedData(base.x_train, base.y_train, base.x_test, base.y_test, iid,
                         base.num_classes)  # fmt: skip
    rows: list[AttackRow] | None = None
    dp: dict[str, Any] | None = None
    try:  # FedAvg needs devices that reach the server
        rows = attack_study(state, data, ctx)
        if config.dp:
            dp = dp_study(state, data)
    except CannotFitError as error:
        state.skip("security.aggregation_under_attack", str(error))
        if config.dp:
            state.skip("security.dp", str(error))
    state.security = SecurityResult(wire, fuzz, rows, dp)
    return _summary(config, state.security)
