"""The protocol layers' costs for this run's devices: the security layer's, which every stage
that sends messages charges when ``security.protect_messages`` is on (`tinylarge.secure.costs`),
and the deployment's message transport (``deploy.transport``, `tinylarge.secure.transport`),
which the policies and the hybrid language models charge on every message."""

from __future__ import annotations

from tinylarge.config import Scenario
from tinylarge.config.deploy_config import DeployConfig
from tinylarge.net.overhead import ProtocolOverhead, combine
from tinylarge.secure.costs import protocol_overhead, run_device_id
from tinylarge.secure.identity import Identity
from tinylarge.secure.transport import device_topic_bytes, transport_overhead
from tinylarge.secure.updates import SignedUpdates
from tinylarge.sim.state import RunState
from tinylarge.sim.tiny_stages import mcu_profiles

#: Topic prefix of a deployment unless it says otherwise (`tinylarge.deploy.protocol.Topics`).
DEFAULT_PREFIX = "tinylarge"
#: The language-model deployment's (`tinylarge.deploy.hlm_protocol.lm_topics`).
LM_PREFIX = f"{DEFAULT_PREFIX}/lm"


def run_overhead(state: RunState) -> ProtocolOverhead | None:
    """Per-message and per-session costs on the target MCU (the run's longest device id), or
    None when messages are not protected."""
    return security_overhead(state.scenario, state.scenario.devices.count)


def security_overhead(scenario: Scenario, n_devices: int) -> ProtocolOverhead | None:
    """The security layer's costs for ``n_devices`` devices (their longest id) on the target
    MCU, or None when ``security.protect_messages`` is off."""
    if not scenario.security.protect_messages:
        return None
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    device_id = run_device_id(n_devices - 1, n_devices)
    return protocol_overhead(device_id, mcu, scenario.security.aead)


def transport_costs(
    scenario: Scenario,
    n_devices: int,
    *,
    deploy: DeployConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> ProtocolOverhead:
    """The message transport's costs (``deploy.transport`` at ``deploy.qos``; ``deploy``
    defaults to the scenario's) for ``n_devices`` devices on the target MCU: topics and
    client ids under ``prefix`` with the longest device id (every id of a run has its
    length)."""
    settings = deploy or scenario.deploy
    device_id = run_device_id(n_devices - 1, n_devices)
    up, down, client = device_topic_bytes(prefix, device_id)
    return transport_overhead(
        settings.transport,
        topic_bytes=up,
        down_topic_bytes=down,
        qos=settings.qos,
        mcu=mcu_profiles(scenario)[scenario.tiny.target_mcu],
        client_id_bytes=client,
        device_id_bytes=len(device_id.encode()),
    )


def message_overhead(
    scenario: Scenario,
    n_devices: int,
    *,
    deploy: DeployConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
    protect: bool = True,
) -> ProtocolOverhead:
    """What every message pays: the security layer's costs (when on and ``protect``) carried
    by the transport (`transport_costs`)."""
    transport = transport_costs(scenario, n_devices, deploy=deploy, prefix=prefix)
    security = security_overhead(scenario, n_devices) if protect else None
    return transport if security is None else combine(security, transport)


def signed_updates(state: RunState) -> SignedUpdates | None:
    """The closed loop's update channel: bundles for the target MCU signed by a fresh server
    identity, or None when ``security.signed_updates`` (or message protection) is off."""
    scenario = state.scenario
    if not (scenario.security.protect_messages and scenario.security.signed_updates):
        return None
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    return SignedUpdates(Identity.generate("edge"), scenario.tiny.target_mcu, mcu)
