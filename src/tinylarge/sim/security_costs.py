"""The security layer's costs for this run's devices: what every stage that sends messages
charges when ``security.protect_messages`` is on (`tinylarge.secure.costs`)."""

from __future__ import annotations

from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.secure.costs import protocol_overhead, run_device_id
from tinylarge.secure.identity import Identity
from tinylarge.secure.updates import SignedUpdates
from tinylarge.sim.state import RunState
from tinylarge.sim.tiny_stages import mcu_profiles


def run_overhead(state: RunState) -> ProtocolOverhead | None:
    """Per-message and per-session costs on the target MCU (the run's longest device id), or
    None when messages are not protected."""
    scenario = state.scenario
    if not scenario.security.protect_messages:
        return None
    n = scenario.devices.count
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    return protocol_overhead(run_device_id(n - 1, n), mcu, scenario.security.aead)


def signed_updates(state: RunState) -> SignedUpdates | None:
    """The closed loop's update channel: bundles for the target MCU signed by a fresh server
    identity, or None when ``security.signed_updates`` (or message protection) is off."""
    scenario = state.scenario
    if not (scenario.security.protect_messages and scenario.security.signed_updates):
        return None
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    return SignedUpdates(Identity.generate("edge"), scenario.tiny.target_mcu, mcu)
