"""The simulator's prediction of a hybrid language model's deployment, beside the measurement
(``deploy.sim_vs_real`` of a text deployment).

The deployed tokens are replayed through the simulator's token streams
(`tinylarge.sim.hybrid_lm_network.simulate_token_streams`): the same uploads at the same
positions with the payloads the devices sent (`token_schedule`), over the cell the link was
emulated on, with the deployed edge's batch service time as measured on the running server
(`tinylarge.deploy.twin.deployed_edge`), the devices' reply deadline and the security layer's
overhead carried by the deployment's transport (its topics, QoS, TLS or not), so that a message
costs the simulator the bytes it cost the devices on the TCP stream. The simulator draws its
own fading and HARQ outcomes, so the two agree in distribution, not token by token.

What the message transport adds to a round trip beyond the radio (the MQTT broker's two
relays and the clients' stacks, measured on the running system as the device's round trip
minus the edge's time: `tinylarge.deploy.hlm_records.round_trip_split`) is not in the radio
model; as for frames (`tinylarge.deploy.twin.simulate_deployment`) the prediction is made
with half of it added to the backhaul each way, and once more for the radio alone
(``without_transport``), on the same draws.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.hlm_records import TokenRecords, token_metrics
from tinylarge.deploy.twin import deployed_edge
from tinylarge.net.cell import CellDevices
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.uplink import LinkSettings
from tinylarge.sim.hybrid_lm_network import (
    TokenLink,
    TokenSchedule,
    TokenStreams,
    simulate_token_streams,
)


@dataclass(frozen=True)
class TwinLink:
    """What the link emulation ran on: the cell (device ``i`` = deployed device ``i``), its
    link settings, the messages' overhead (security layer and transport; None: none) and the
    draft model's cost on the target MCU (MACs per token, s and J per MAC)."""

    cells: CellDevices
    settings: LinkSettings
    overhead: ProtocolOverhead | None
    draft_macs: int
    seconds_per_mac: float
    joules_per_mac: float


def token_schedule(
    records: TokenRecords, reply_bytes: int, draft_macs: int, uses_draft: bool
) -> TokenSchedule:
    """The deployed tokens as the simulator's trace: device ``d``'s tokens at positions
    ``d x tokens .. (d + 1) x tokens - 1`` (`tinylarge.sim.hybrid_lm_network.stream_positions`
    reads exactly these), each with its upload and first request's payload (bytes; a request
    the radio lost, which never left, gets the scheme's median payload)."""
    upload = records.uploaded.reshape(-1)
    payload = records.payload_up.reshape(-1).copy()
    sent = payload[upload & (payload > 0)]
    payload[upload & (payload == 0)] = int(np.median(sent)) if sent.size else 1
    return TokenSchedule(upload, payload, reply_bytes, draft_macs if uses_draft else 0)


def _both(sim: float | None, real: float | None) -> dict[str, float | None]:
    ratio = sim / real if sim is not None and real else None
    return {"sim": sim, "real": real, "ratio": ratio}


def compare(records: TokenRecords, streams: TokenStreams) -> dict[str, Any]:
    """The measurement and the prediction side by side (``sim``, ``real``, ``ratio``)."""
    real, sim = token_metrics(records), streams.summary()
    out = {
        key: _both(sim[key], real[key])
        for key in ("tokens_per_s", "p50_token_latency_s", "p99_token_latency_s",
                    "bytes_up_per_token", "bytes_down_per_token",
                    "transport_bytes_up_per_token", "transport_bytes_down_per_token")
    }  # fmt: skip
    out["uplink_fraction"] = _both(sim["sent_fraction"], real["uplink_fraction"])
    tokens = max(1, real["tokens"])
    out["timed_out_fraction"] = _both(sim["timed_out_fraction"], real["timed_out"] / tokens)
    out["fallback_fraction"] = _both(sim["fallback_fraction"], real["fallback"] / tokens)
    return out


def scheme_sim_vs_real(
    rng: np.random.Generator,
    records: TokenRecords,
    link: TwinLink,
    *,
    reply_bytes: int,
    uses_draft: bool,
    service_fit: dict[str, float] | None,
    settings: DeployConfig,
    transport_s: float = 0.0,
) -> dict[str, Any]:
    """One scheme's ``deploy.sim_vs_real`` entry (module doc).

    Parameters
    ----------
    rng : numpy.random.Generator
        The simulator's stream (both predictions draw the same values from it).
    records : TokenRecords
        The deployed scheme's tokens.
    link : TwinLink
    reply_bytes : int
        A reply's payload, bytes.
    uses_draft : bool
        Whether the scheme drafts on the device (LLM only does not).
    service_fit : dict or None
        The deployed edge's measured batch service (`tinylarge.deploy.server.service_fit`).
    settings : DeployConfig
        Batching and the reply deadline the deployment ran with.
    transport_s : float
        The measured transport per round trip, s (>= 0; half added to the backhaul each way).

    Returns
    -------
    dict
        `compare` of the prediction with the transport, ``transport_s``, and
        ``without_transport``: `compare` of the radio alone's prediction.

    Raises
    ------
    ValueError
        A negative or non-finite ``transport_s``.
    """
    if not (np.isfinite(transport_s) and transport_s >= 0):
        raise ValueError(f"transport_s must be a finite number of seconds >= 0, got {transport_s}")
    schedule = token_schedule(records, reply_bytes, link.draft_macs, uses_draft)
    edge = deployed_edge(service_fit, settings)

    def simulate(stream: np.random.Generator, extra_s: float) -> TokenStreams:
        radio = replace(link.settings, backhaul_s=link.settings.backhaul_s + extra_s / 2)
        token_link = TokenLink(link.cells, radio, edge, settings.reply_deadline_s, link.overhead)
        return simulate_token_streams(
            stream, schedule, token_link, tokens_per_device=records.tokens,
            seconds_per_mac=link.seconds_per_mac, joules_per_mac=link.joules_per_mac,
        )  # fmt: skip

    radio_only = simulate(copy.deepcopy(rng), 0.0)
    return {
        **compare(records, simulate(rng, transport_s)),
        "transport_s": transport_s,
        "without_transport": compare(records, radio_only),
    }
