"""A deployment on separate machines: the enrolling machine holds the CA's key and issues every
certificate; an edge or broker machine that got only the public CA and its own files uses
them (a real Mosquitto accepts the edge's copied certificate), and says which files to copy
when some are missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinylarge.deploy.broker import Broker
from tinylarge.deploy.layout import EDGE_ID, DeployLayout
from tinylarge.deploy.mqtt import diagnose_refusal


def copy(source: DeployLayout, target: DeployLayout, *relative: str) -> None:
    """Copy ``relative`` paths (under ``deploy/``) from one run directory to another, as a
    user would with scp (same paths; modes kept)."""
    for name in relative:
        destination = target.root / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.root / name, destination)


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


EDGE_FILES = ("pki/ca.crt", "pki/certs/edge.crt", "pki/private/edge.key")
BROKER_FILES = ("pki/ca.crt", "pki/crl.pem", "pki/server/127.0.0.1.crt", "pki/server/127.0.0.1.key")


@pytest.fixture
def enrolling(tmp_path: Path) -> DeployLayout:
    """The machine that enrols: CA, two devices, the edge's and the broker's certificates."""
    layout = DeployLayout(tmp_path / "enrolling")
    layout.enroll(2)
    layout.pki.issue_client(EDGE_ID)  # what `tinylarge fleet --enroll-only` issues
    layout.broker_security()
    return layout


def test_a_fresh_single_machine_makes_its_ca(tmp_path: Path) -> None:
    layout = DeployLayout(tmp_path)
    assert layout.issues_certificates
    layout.edge()
    assert layout.pki.ca_key.is_file()
    assert layout.tls_for(EDGE_ID).cert == layout.pki.root / "certs" / "edge.crt"
    assert layout.issues_certificates


def test_an_edge_machine_serves_the_copied_files(
    tmp_path: Path, enrolling: DeployLayout, mosquitto: str
) -> None:
    edge = DeployLayout(tmp_path / "edge")
    copy(enrolling, edge, *EDGE_FILES, "registry.json")
    before = files_under(edge.pki.root)
    assert not edge.issues_certificates
    identity = edge.edge()
    assert identity.device_id == EDGE_ID
    assert files_under(edge.pki.root) == before  # nothing issued, no CA made, no CRL
    files = edge.tls_for(EDGE_ID)
    assert (files.ca, files.cert, files.key) == tuple(edge.root / name for name in EDGE_FILES)
    assert files.cert.read_bytes() == enrolling.tls_for(EDGE_ID).cert.read_bytes()
    broker_machine = DeployLayout(tmp_path / "broker")
    copy(enrolling, broker_machine, *BROKER_FILES)
    security = broker_machine.broker_security(prefixes=("fleet1",))
    assert security.server.key == broker_machine.root / BROKER_FILES[3]
    assert security.crl == broker_machine.pki.crl and security.prefixes == ("fleet1",)
    assert files_under(broker_machine.root) == set(BROKER_FILES)  # nothing issued
    with Broker(tmp_path / "mosquitto", executable=mosquitto, security=security) as broker:
        assert diagnose_refusal(broker.address, files) is None  # the copies work together


def test_missing_copies_are_named(tmp_path: Path, enrolling: DeployLayout) -> None:
    edge = DeployLayout(tmp_path / "edge")
    copy(enrolling, edge, "pki/ca.crt", "pki/certs/edge.crt")
    for call in (edge.edge, lambda: edge.tls_for(EDGE_ID)):
        with pytest.raises(ValueError, match=r"missing: \S*/pki/private/edge\.key\. ") as error:
            call()
        assert "edge.crt" not in str(error.value)  # only what is missing
        assert "ca.key" in str(error.value) and "--enroll-only" in str(error.value)
    assert not edge.pki.ca_key.exists()
    broker_machine = DeployLayout(tmp_path / "broker")
    copy(enrolling, broker_machine, "pki/ca.crt", "pki/server/127.0.0.1.key")
    with pytest.raises(ValueError, match=r"the broker's TLS files are missing") as error:
        broker_machine.broker_security()
    message = str(error.value)
    assert "crl.pem" in message and "127.0.0.1.crt" in message and "127.0.0.1.key" not in message
    assert not (broker_machine.pki.root / "certs").exists()
    with pytest.raises(ValueError, match=r"device 'device-00009''s TLS files are missing"):
        edge.tls_for("device-00009")


def test_a_machine_without_the_ca_key_does_not_enrol_new_devices(
    tmp_path: Path, enrolling: DeployLayout
) -> None:
    fleet = DeployLayout(tmp_path / "fleet")
    copy(enrolling, fleet, "devices.json", "registry.json", "pki/ca.crt")
    with pytest.raises(ValueError, match=r"2 device identities, 3 asked for"):
        fleet.enroll(3)
    with pytest.raises(ValueError, match=r"the fleet's TLS files are missing: .*device-\d{5}\.crt"):
        fleet.enroll(2)
    ids = [identity.device_id for identity in enrolling.enroll(2)]
    copy(enrolling, fleet, *(f"pki/{kind}/{i}.{ext}" for i in ids
                             for kind, ext in (("certs", "crt"), ("private", "key"))))  # fmt: skip
    assert [identity.device_id for identity in fleet.enroll(2)] == ids
    assert not fleet.pki.ca_key.exists()
