"""The network stage: coverage of every radio profile, and the devices' messages over the
chosen profile's cell to the edge server (whose batch service time is measured on the run's
own large model)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from tinylarge.config.network_config import NetworkConfig
from tinylarge.config.scenario import Scenario
from tinylarge.net import (
    Coverage,
    EdgeServiceModel,
    LinkSettings,
    RadioEnergyModel,
    RadioProfile,
    UnknownRadioProfileError,
    attach_devices,
    cell_poisson_arrivals,
    coverage,
    radio_profile,
    send_messages,
)
from tinylarge.net.draws import stream_seed
from tinylarge.net.edge_service import fit_batch_service
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.secure.transport import transport_summary
from tinylarge.seeding import rng_for
from tinylarge.sim.ray_shards import shard_plan
from tinylarge.sim.security_costs import security_overhead, transport_costs
from tinylarge.sim.stage_results import NetworkResult
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState


def network_profiles(scenario: Scenario) -> dict[str, RadioProfile]:
    """The profiles a run uses (the devices' one first, then the compared ones), validated."""
    config = scenario.network
    names = [config.profile] + [n for n in config.compare_profiles if n != config.profile]
    try:
        return {name: radio_profile(name, config.custom_profiles) for name in names}
    except UnknownRadioProfileError as error:
        raise ValueError(f"network: {error.args[0]}") from None
    except ValueError as error:  # pydantic ValidationError of a custom profile
        raise ValueError(f"network.custom_profiles: {error}") from None


def check_network_config(scenario: Scenario) -> None:
    """Fail before any work on an unknown or invalid radio profile."""
    if scenario.network.enabled:
        network_profiles(scenario)


def measure_edge_server(
    model: nn.Module, input_shape: tuple[int, ...], *, max_batch: int, sites: str = "shared"
) -> EdgeServiceModel:
    """Time the large model on this machine at batch 1 and ``max_batch``; fit setup + per item
    (`tinylarge.net.edge_service.fit_batch_service`, as the running edge fits its batches).

    Median of 5 timed runs each after a warm-up, torch inference mode.
    """
    model.eval()

    def seconds(batch: int) -> float:
        x = torch.zeros((batch, *input_shape))
        times = []
        with torch.inference_mode():
            model(x)
            for _ in range(5):
                started = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - started)
        return float(np.median(times))

    t1, tb = seconds(1), seconds(max_batch)
    setup, per_item = fit_batch_service(np.array([1, max_batch]), np.array([t1, tb]))
    return EdgeServiceModel(
        setup_s=setup,
        per_item_s=per_item,
        max_batch=max_batch,
        sites="per_cell" if sites == "per_cell" else "shared",
        source=f"measured on this machine: batch 1 {t1 * 1e3:.2f} ms, batch {max_batch} "
        f"{tb * 1e3:.2f} ms",
    )


def scenario_coverage(scenario: Scenario, profiles: dict[str, RadioProfile]) -> dict[str, Coverage]:
    """Coverage of each profile with the scenario's network settings and devices per cell."""
    config = scenario.network
    per_cell = max(1, scenario.devices.count // config.n_cells)
    return {
        name: coverage(
            rng_for(scenario.seed, "network", "coverage", name),
            name,
            profile,
            config.coverage_devices,
            devices_per_cell=per_cell,
            indoor_fraction=config.indoor_fraction,
            device_height_m=config.device_height_m,
            fading=config.fading,
            rician_k_db=config.rician_k_db,
            method=config.spectral_efficiency,
        )
        for name, profile in profiles.items()
    }


def edge_service(state: RunState) -> EdgeServiceModel:
    """The edge server's batch service time: measured on the run's large model when
    ``network.edge_service = "measured"`` (and there is one), else the scenario's profile."""
    config, batching = state.scenario.network, state.scenario.deploy  # deploy: as deployed
    large = state.models.get("large")
    if config.edge_service == "measured" and large is not None:
        measured = measure_edge_server(
            large.model,
            state.require_task().input_shape,
            max_batch=batching.edge_max_batch,
            sites=config.edge_sites,
        )
        return replace(measured, max_wait_s=batching.edge_max_wait_s)
    return EdgeServiceModel(
        setup_s=config.edge_setup_s,
        per_item_s=config.edge_per_item_s,
        max_batch=batching.edge_max_batch,
        max_wait_s=batching.edge_max_wait_s,
        sites=config.edge_sites,
        source="profile in the scenario (default: the 545 k-parameter ResNet measured on a "
        "2-core x86-64 machine: 1.97 ms at batch 1, 10.8 ms at batch 64)",
    )


def link_settings(config: NetworkConfig) -> LinkSettings:
    """The cell's link settings from the scenario's ``[network]`` section."""
    return LinkSettings(
        spectral_efficiency=config.spectral_efficiency,
        scheduler=config.scheduler,
        fading=config.fading,
        rician_k_db=config.rician_k_db,
        bler_target=config.bler_target,
        max_transmissions=config.max_transmissions,
        backhaul_s=config.backhaul_s,
        energy=RadioEnergyModel(**config.energy.model_dump()),
    )


def transport_metrics(scenario: Scenario, reply_bytes: int) -> dict[str, Any]:
    """``network.transport``: the deployment's transport (``deploy.transport``) around one
    message of ``network.traffic.message_bytes`` and one reply of ``reply_bytes`` (sealed by
    the security layer when it is on), and one connection set-up
    (`tinylarge.secure.transport.transport_summary`)."""
    n = scenario.devices.count
    security = security_overhead(scenario, n) or ProtocolOverhead()
    return transport_summary(
        scenario.deploy.transport,
        transport_costs(scenario, n),
        int(security.sealed_bytes(scenario.network.traffic.message_bytes)),
        int(security.sealed_bytes(reply_bytes)),
    )


def network_stage(state: RunState, ctx: StageContext) -> str:
    """Coverage per profile; Poisson uplink messages of every device over the chosen cell."""
    scenario = state.scenario
    config = scenario.network
    if not config.enabled:
        return "disabled"
    profiles = network_profiles(scenario)
    coverages = scenario_coverage(scenario, profiles)
    edge = edge_service(state)
    rng = rng_for(scenario.seed, "network", "messages")
    cells = attach_devices(
        rng,
        profiles[config.profile],
        scenario.devices.count,
        n_cells=config.n_cells,
        indoor_fraction=config.indoor_fraction,
        device_height_m=config.device_height_m,
    )
    traffic = config.traffic
    # every cell draws its devices' arrivals from its own stream (messages by cell, then time)
    device, arrival = cell_poisson_arrivals(
        stream_seed(rng),
        cells.topology.cell,
        np.arange(config.n_cells),
        rate_hz=traffic.rate_per_device_hz,
        duration_s=traffic.duration_s,
    )
    settings = link_settings(config)
    # Compute: the device runs the int8 tiny model on every frame it senses (its MCU estimate);
    # sleep: between messages a device sleeps for the mean inter-message time (the exchange
    # itself, a few ms, is charged at TX/RX/idle power on top: a slight overcount).
    target = state.footprints.get(scenario.tiny.target_mcu)
    compute_j = target.energy_j if target is not None else 0.0
    sleep_s = 1.0 / traffic.rate_per_device_hz
    shards, runner = shard_plan(config.ray_shards)
    reply_bytes = state.reply_bytes()
    messages = send_messages(
        rng,
        cells,
        settings,
        edge,
        device=device,
        arrival_s=arrival,
        bytes_up=traffic.message_bytes,
        bytes_down=reply_bytes,
        compute_energy_j=compute_j,
        sleep_time_s=sleep_s,
        shards=shards,
        runner=runner,
    )
    state.network = NetworkResult(
        settings=settings,
        coverage=coverages,
        cells=cells,
        messages=messages,
        edge=edge,
        reply_bytes=reply_bytes,
        compute_energy_j_per_message=compute_j,
        sleep_s_per_message=sleep_s,
        shards=shards,
        runner=runner,
        transport=transport_metrics(scenario, reply_bytes),
    )
    summary = messages.summary()
    p99 = summary["latency_s"]["p99"]
    lat = f"p99 latency {p99 * 1e3:.1f} ms" if p99 is not None else "nothing delivered"
    return (
        f"{len(profiles)} profiles; {summary['messages']:,} messages over {config.profile}: "
        f"{summary['delivered_fraction']:.1%} delivered, {lat}"
    )
