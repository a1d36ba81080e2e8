"""What the network stage (`tinylarge.sim.net_stages`) leaves for later stages, and its metrics.

Kept apart from the stage so that `tinylarge.sim.state.RunState` can hold it without importing
the stage (which imports the state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylarge.config.network_config import NetworkConfig
from tinylarge.net import CellDevices, Coverage, EdgeServiceModel, LinkSettings, MessageResult
from tinylarge.net.shards import ShardRunner


@dataclass(frozen=True)
class NetworkResult:
    """The run's cell and what its devices' messages met there.

    Attributes
    ----------
    settings : LinkSettings
        Scheduler, fading, HARQ, backhaul and radio energy of the cell.
    coverage : dict of profile name -> Coverage
        Uplink coverage of every compared radio profile.
    cells : CellDevices
        The devices attached to the chosen profile's cells (their large-scale channel).
    messages : MessageResult
        Every Poisson uplink message of every device, per message.
    edge : EdgeServiceModel
        The edge server's batch service time (measured on this machine or from the scenario).
    reply_bytes : int
        Payload of the edge's reply to each message, bytes.
    compute_energy_j_per_message : float
        Device energy of one int8 tiny-model inference on the target MCU, J (0 without one).
    sleep_s_per_message : float
        Sleep time charged between two messages of a device, s (the mean inter-message time).
    shards : int
        Shards of cells the messages were computed in (1: in this process).
    runner : ShardRunner or None
        What ran the shards (None: in this process); later stages reuse it.
    """

    settings: LinkSettings
    coverage: dict[str, Coverage]
    cells: CellDevices
    messages: MessageResult
    edge: EdgeServiceModel
    reply_bytes: int
    compute_energy_j_per_message: float
    sleep_s_per_message: float
    shards: int
    runner: ShardRunner | None

    def metrics(self, config: NetworkConfig) -> dict[str, Any]:
        """``network``: coverage per profile and the uplink messages' summary.

        Parameters
        ----------
        config : NetworkConfig
            The scenario's ``[network]`` section the stage ran with.
        """
        edge = self.edge
        return {
            "profile": config.profile,
            "coverage": {n: c.summary() for n, c in self.coverage.items()},
            "uplink": {
                **self.messages.summary(),
                "compute_energy_j_per_message": self.compute_energy_j_per_message,
                "sleep_s_per_message": self.sleep_s_per_message,
            },
            "traffic": {**config.traffic.model_dump(), "reply_bytes": self.reply_bytes},
            "edge_server": {
                "setup_s": edge.setup_s,
                "per_item_s": edge.per_item_s,
                "max_batch": edge.max_batch,
                "sites": edge.sites,
                "source": edge.source,
            },
            "cells": config.n_cells,
            "ray_shards": config.ray_shards,
        }
