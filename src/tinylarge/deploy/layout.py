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
``pki/ca.crt``         the project CA's certificate (X.509, P-256)                everyone
``pki/ca.key``         the CA's private key (mode 0600)                           who enrols
``pki/crl.pem``        the revoked certificates                                   broker
``pki/certs/ID.crt``   the certificate of device or edge ``ID`` (CN = ``ID``)     that one
``pki/private/ID.key`` its private key (mode 0600)                                that one
``pki/server/H.*``     the broker's certificate and key for host ``H`` (0640)     broker
=====================  =========================================================  ==========

On separate machines, copy ``edge.json`` to the fleet's run directory and ``registry.json``
to the edge's; private keys never leave the machine that made them. For a locked-down broker
(``mqtts://``) the broker needs ``pki/ca.crt``, ``pki/crl.pem`` and its ``pki/server/`` pair,
each endpoint ``pki/ca.crt`` and its own certificate and key (`tinylarge.deploy.pki`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinylarge.deploy.broker import BrokerSecurity
from tinylarge.deploy.keys import (
    load_identities,
    save_identities,
    save_registry,
)
from tinylarge.deploy.pki import Pki, TlsFiles
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

    @property
    def pki(self) -> Pki:
        """The project CA of this run (``pki/``): the certificates for the broker's TLS."""
        return Pki(self.root / "pki")

    def edge(self) -> Identity:
        """The edge's identity, made on first use (with its public file beside it), and its
        certificate (CN ``edge``), issued on first use."""
        if self.edge_identity.is_file():
            (identity,) = load_identities(self.edge_identity)
        else:
            identity = Identity.generate(EDGE_ID)
            save_identities(self.edge_identity, [identity])
            save_registry(self.edge_public, [identity])
        self.pki.issue_client(identity.device_id)
        return identity

    def tls_for(self, common_name: str) -> TlsFiles:
        """The certificate files of device or edge ``common_name``; ``ValueError`` (saying how
        to make them) when it has none yet."""
        return self.pki.files(common_name)

    def broker_security(
        self, prefixes: Sequence[str] = ("tinylarge", "tinylarge/lm"), host: str = "127.0.0.1"
    ) -> BrokerSecurity:
        """What a locked-down broker for this run needs (its certificate for ``host`` is
        issued on first use; the ACL's edge is `EDGE_ID`)."""
        return BrokerSecurity.from_pki(self.pki, prefixes, EDGE_ID, host)

    def enroll(self, n_devices: int) -> list[Identity]:
        """The first ``n_devices`` device identities: those on file, plus new ones made and
        enrolled (registry rewritten) when there are fewer; each has its certificate (CN = its
        device id; those on file are reused, a revoked one stays revoked)."""
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
        self.pki.issue_many([identity.device_id for identity in known[:n_devices]])
        return known[:n_devices]
