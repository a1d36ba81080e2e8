"""Scenario section of the running system (`tinylarge.deploy`) and of the simulator's model of
its edge: the one home of the edge's batching, the device's reply deadline, the MQTT QoS and
the fleet's processes.

The simulator's edge model (`tinylarge.net.uplink.EdgeServiceModel`, built by the network
stage) and the deployed edge server (`tinylarge serve`, `tinylarge deploy`) read the same
``edge_max_batch`` and ``edge_max_wait_s``, so a simulated run and a deployed one start from
the same batching. The command-line options of `tinylarge serve | fleet | deploy`
(``--max-batch``, ``--max-wait-ms``, ``--deadline-ms``, ``--qos``, ``--processes``) override
these values for one run.

Two deadlines, two concepts:

- ``deploy.reply_deadline_s`` (this section) is a **device agent's reply timer**: an offloaded
  request whose answer has not come back within it is answered by the device itself
  (``timed_out`` in ``metrics.json``). The simulator's prediction of a deployment (the
  digital twin, `tinylarge.deploy.twin`) counts a request as on time against it.
- ``policies.deadline_s`` is the **planning deadline** of the simulated policies: a
  resource-aware policy keeps on the device the offloads predicted to miss it, and the
  simulator's report counts how many requests met it. It is much tighter (50 ms by default)
  than a reply timer needs to be, and it does not make a device give up on a reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from tinylarge.config.base import Section
from tinylarge.config.errors import ScenarioError, format_validation_error

#: Keys that moved into ``[deploy]``: old dotted path -> new dotted path.
MOVED_KEYS: dict[str, str] = {"network.edge_max_batch": "deploy.edge_max_batch"}


def refuse_moved_keys(section: str, values: Any) -> Any:
    """``values`` (a section's raw table) unchanged; ``ValueError`` naming the new key for
    any key of ``section`` that has moved (see `MOVED_KEYS`)."""
    if isinstance(values, dict):
        for old, new in MOVED_KEYS.items():
            old_section, _, key = old.partition(".")
            if old_section == section and key in values:
                raise ValueError(
                    f"{old} has moved to {new} (the [deploy] section holds the edge's batching "
                    f"for the simulator and the running system alike): write [deploy] "
                    f"{new.partition('.')[2]} = {values[key]!r} instead"
                )
    return values


class DeployConfig(Section):
    """The running system's settings, shared with the simulator's model of the edge.

    Attributes
    ----------
    edge_max_batch : int
        Largest batch the edge's large model runs (requests), in the simulator's edge model
        and in the deployed edge server.
    edge_max_wait_s : float
        How long the first request of a batch waits for others before the batch runs, s
        (dynamic batching as in NVIDIA Triton's dynamic batcher), in both.
    reply_deadline_s : float
        A device agent's reply timer, s: an offload not answered within it is answered by the
        device itself. Not the policies' planning deadline (``policies.deadline_s``; module
        doc).
    qos : {0, 1}
        MQTT QoS of offloads and replies: 1 at least once, 0 at most once (half the packets; a
        lost message becomes a timed-out request). Handshakes and model bundles are always 1.
    processes : int
        Processes the device agents of a fleet are spread over.
    transport : {"mqtt-tls", "mqtt"}
        How messages cross the broker: ``mqtt-tls`` (default) is MQTT over TLS 1.3 with a
        certificate per device and per-device topic ACLs at the broker; ``mqtt`` is plain MQTT
        (an open broker, for comparison). The simulator charges the chosen transport's framing,
        record overhead and connection handshake too, so that a deployment and its simulated
        twin count the same bytes.
    """

    edge_max_batch: int = Field(
        64, ge=1, le=100_000, description="largest batch the edge's large model runs"
    )
    edge_max_wait_s: float = Field(
        0.002, ge=0.0, le=10.0, description="how long a batch's first request waits for more"
    )
    reply_deadline_s: float = Field(
        0.5,
        gt=0.0,
        le=100.0,
        description="a device's reply timer: after it the device keeps its own answer "
        "(not policies.deadline_s, the policies' planning deadline)",
    )
    qos: Literal[0, 1] = Field(1, description="MQTT QoS of offloads and replies")
    processes: int = Field(1, ge=1, le=256, description="processes the device agents run in")
    transport: Literal["mqtt-tls", "mqtt"] = Field(
        "mqtt-tls", description="MQTT over mutual TLS (default) or plain MQTT"
    )


def with_overrides(
    config: DeployConfig, source: str, overrides: Mapping[str, object | None]
) -> DeployConfig:
    """``config`` with every value in ``overrides`` that is not None put in place of its key,
    validated as in a scenario file: `ScenarioError` naming ``source`` (e.g. the command's
    options), the key, the value and what is allowed; a key that is not a field of
    `DeployConfig` is refused the same way."""
    unknown = sorted(set(overrides) - set(DeployConfig.model_fields))
    if unknown:
        allowed = ", ".join(DeployConfig.model_fields)
        raise ScenarioError(
            f"invalid scenario in {source}: unknown [deploy] key(s) {unknown}; allowed: {allowed}"
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    table = {**config.model_dump(), **given}
    try:
        return DeployConfig.model_validate(table)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, DeployConfig, source)) from None
