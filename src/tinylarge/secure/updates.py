"""Over-the-air model updates as signed bundles: the closed loop's update channel.

The server signs each update (`sign_bundle`, one version per push); a device installs it only
after `verify_bundle` accepts it against its installed version, and pays the check (Ed25519
verification + SHA-256 of the model on its MCU, `tinylarge.secure.costs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylarge.secure.bundle import DEFAULT_MAX_MODEL_BYTES, sign_bundle, verify_bundle
from tinylarge.secure.costs import bundle_check_cycles
from tinylarge.secure.identity import Identity
from tinylarge.tiny.mcu import McuProfile


@dataclass(frozen=True)
class SignedUpdates:
    """Package updates for devices of class ``target`` (an MCU name) signed by ``server``.

    Implements `tinylarge.integrate.colearning.closed_loop.UpdateChannel`.
    """

    server: Identity
    target: str
    mcu: McuProfile
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES

    def package(self, update: bytes, version: int) -> bytes:
        """The signed bundle of ``update`` as ``version``."""
        return sign_bundle(update, version, self.target, self.server)

    def install(self, package: bytes, installed_version: int) -> bytes:
        """What a device with ``installed_version`` installs from ``package``, or the
        `SecurityError` that makes it keep its model."""
        return verify_bundle(
            package,
            self.server.public_key,
            installed_version,
            self.target,
            max_model_bytes=self.max_model_bytes,
        )

    def install_energy_j(self, update_bytes: int) -> float:
        """A device's energy to check a bundle of an ``update_bytes`` update, J."""
        return bundle_check_cycles(update_bytes) / self.mcu.clock_hz * self.mcu.active_power_w
