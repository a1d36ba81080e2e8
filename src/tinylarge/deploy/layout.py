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
to the edge's; identity keys never leave the machine that made them. For a locked-down broker
(``mqtts://``) the broker needs ``pki/ca.crt``, ``pki/crl.pem`` and its ``pki/server/`` pair,
each endpoint ``pki/ca.crt`` and its own certificate and key (`tinylarge.deploy.pki`): each
certificate's key goes to the one machine that uses it, ``pki/ca.key`` to none.

Certificates are issued only where the CA's key is (`DeployLayout.issues_certificates`): on
the machine that enrols the fleet, or on a single machine, which makes the CA on first use. A
machine with ``pki/ca.crt`` but no ``pki/ca.key`` (an edge, a broker) uses the certificate
files copied to it, and ``ValueError`` names the ones still missing.
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

    @property
    def issues_certificates(self) -> bool:
        """Whether certificates are issued here: this machine holds the CA's key
        (``pki/ca.key``), or there is no CA yet (a single-machine run makes one). A machine
        that got only ``pki/ca.crt`` uses the certificate files copied to it."""
        pki = self.pki
        return pki.ca_key.is_file() or not pki.ca_cert.is_file()

    def _copied(self, files: Sequence[Path], whose: str, how: str) -> None:
        """``ValueError`` naming those of ``files`` that are missing on this CA-less machine."""
        missing = list(dict.fromkeys(path for path in files if not path.is_file()))
        if not missing:
            return
        shown = ", ".join(str(path) for path in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise ValueError(
            f"{whose} TLS files are missing: {shown}{more}. This machine has the project CA's "
            f"certificate but not its key ({self.pki.ca_key}), so it cannot issue them: {how}, "
            "and copy them here under the same paths of the run directory"
        )

    def _edge_copied(self) -> TlsFiles:
        files = self.pki.client_paths(EDGE_ID)
        how = (
            "issue them on the machine that holds the CA's key (`tinylarge fleet RUN_DIR "
            "--enroll-only` there issues them and says what goes where)"
        )
        self._copied([files.ca, files.cert, files.key], f"the edge's ({EDGE_ID!r})", how)
        return files

    def edge(self) -> Identity:
        """The edge's identity, made on first use (with its public file beside it), and its
        certificate (CN ``edge``): issued on first use where `issues_certificates`, else the
        copied one (``ValueError`` naming the files to copy when they are missing)."""
        if self.edge_identity.is_file():
            (identity,) = load_identities(self.edge_identity)
        else:
            identity = Identity.generate(EDGE_ID)
            save_identities(self.edge_identity, [identity])
            save_registry(self.edge_public, [identity])
        if self.issues_certificates:
            self.pki.issue_client(identity.device_id)
        else:
            self._edge_copied()
        return identity

    def tls_for(self, common_name: str) -> TlsFiles:
        """The certificate files of device or edge ``common_name``; ``ValueError`` when it has
        none yet (saying how to issue them, or on a machine without the CA's key, which files
        to copy)."""
        if self.issues_certificates:
            return self.pki.files(common_name)
        if common_name == EDGE_ID:
            return self._edge_copied()
        files = self.pki.client_paths(common_name)
        how = "enrol the device where the CA's key is"
        self._copied([files.ca, files.cert, files.key], f"device {common_name!r}'s", how)
        return files

    def broker_security(
        self, prefixes: Sequence[str] = ("tinylarge", "tinylarge/lm"), host: str = "127.0.0.1"
    ) -> BrokerSecurity:
        """What a locked-down broker for this run needs (the ACL's edge is `EDGE_ID`). Its
        certificate for ``host`` is issued on first use where `issues_certificates`; a broker
        machine without the CA's key uses the ``ca.crt``, ``crl.pem`` and ``server/`` pair
        copied to it (``ValueError`` naming the missing ones)."""
        pki = self.pki
        if self.issues_certificates:
            return BrokerSecurity.from_pki(pki, prefixes, EDGE_ID, host)
        server = pki.server_paths(host)
        how = (
            f"issue them on the machine that holds the CA's key (DeployLayout.broker_security "
            f"with host {host!r}; `tinylarge broker --run-dir RUN_DIR` for 127.0.0.1)"
        )
        self._copied([server.ca, pki.crl, server.cert, server.key], "the broker's", how)
        return BrokerSecurity(server, pki.crl, tuple(prefixes), EDGE_ID)

    def enroll(self, n_devices: int) -> list[Identity]:
        """The first ``n_devices`` device identities: those on file, plus new ones made and
        enrolled (registry rewritten) when there are fewer; each has its certificate (CN = its
        device id; those on file are reused, a revoked one stays revoked). Where not
        `issues_certificates`, the identities and certificates must all be on file already
        (``ValueError`` otherwise)."""
        if n_devices < 1:
            raise ValueError(f"the fleet needs at least one device, got {n_devices}")
        known = load_identities(self.devices) if self.devices.is_file() else []
        issues = self.issues_certificates
        if not issues and len(known) < n_devices:
            raise ValueError(
                f"{self.devices} holds {len(known)} device identities, {n_devices} asked for, "
                f"and this machine cannot issue certificates to new ones (no {self.pki.ca_key}): "
                "enrol the fleet on the machine that holds the CA's key"
            )
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
        names = [identity.device_id for identity in known[:n_devices]]
        if issues:
            self.pki.issue_many(names)
        else:
            files = [self.pki.client_paths(name) for name in names]
            needed = [path for f in files for path in (f.ca, f.cert, f.key)]
            self._copied(needed, "the fleet's", "enrol the fleet where the CA's key is")
        return known[:n_devices]
