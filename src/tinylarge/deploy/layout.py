"""Where a deployment keeps its files, under ``RUN_DIR/deploy/`` of a `tinylarge run`.

=====================  =========================================================  ==========
file                   what                                                       who needs it
=====================  =========================================================  ==========
``edge_identity.json`` the edge's Ed25519 private key (mode 0600)                 edge only
``edge.json``          the edge's public key                                      devices
``devices.json``       the devices' private keys (mode 0600)                      fleet only
``registry.json``      the devices' public keys: who may offload                  edge
``large.onnx``         the large model exported for ONNX Runtime                  edge
``edge-state/``        gathered labels, bundle version, ``server_stats.json``     edge
=====================  =========================================================  ==========

On separate machines, copy ``edge.json`` to the fleet's run directory and ``registry.json``
to the edge's; private keys never leave the machine that made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinylarge.deploy.keys import (
    load_identities,
    save_identities,
    save_registry,
)
from tinylarge.secure.costs import run_device_id
from tinylarge.secure.identity import Identity

EDGE_ID = "edge"


@dataclass(frozen=True)
class DeployLayout:
    """The deployment files of one run directory."""

    run_dir: Path

    @property
    def root(self) -> Path:
        return self.run_dir / "deploy"

    @property
    def edge_identity(self) -> Path:
        return self.root / "edge_identity.json"

    @property
    def edge_public(self) -> Path:
        return self.root / "edge.json"

    @property
    def devices(self) -> Path:
        return self.root / "devices.json"

    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    @property
    def large_onnx(self) -> Path:
        return self.root / "large.onnx"

    @property
    def edge_state(self) -> Path:
        return self.root / "edge-state"

    def edge(self) -> Identity:
        """The edge's identity, made on first use (with its public file beside it)."""
        if self.edge_identity.is_file():
            (identity,) = load_identities(self.edge_identity)
            return identity
        identity = Identity.generate(EDGE_ID)
        save_identities(self.edge_identity, [identity])
        save_registry(self.edge_public, [identity])
        return identity

    def enroll(self, n_devices: int) -> list[Identity]:
        """The first ``n_devices`` device identities: those on file, plus new ones made and
        enrolled (registry rewritten) when there are fewer."""
        if n_devices < 1:
            raise ValueError(f"the fleet needs at least one device, got {n_devices}")
        known = load_identities(self.devices) if self.devices.is_file() else []
        if len(known) < n_devices:
            ids = {i.device_id for i in known}
            new = [
                Identity.generate(run_device_id(k, max(n_devices, 100_000)))
                for k in range(n_devices)
                if run_device_id(k, max(n_devices, 100_000)) not in ids
            ]
            known = known + new[: n_devices - len(known)]
            save_identities(self.devices, known)
            save_registry(self.registry, known)
        return known[:n_devices]
