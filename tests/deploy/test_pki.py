"""The project CA: certificates checked field by field and by a real TLS handshake, file
permissions, CRL contents, idempotence and errors."""

from __future__ import annotations

import datetime as dt
import grp
import os
import shutil
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tinylarge.deploy import pki as pki_module
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.mqtt import tls_context
from tinylarge.deploy.pki import Pki, TlsFiles


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_device_certificate_is_what_the_broker_needs(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    files = pki.issue_client("device-00007")
    ca, cert = load(files.ca), load(files.cert)
    cert.verify_directly_issued_by(ca)  # raises unless the CA's key signed it
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-00007"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key()
    now = dt.datetime.now(dt.UTC)
    age = now - cert.not_valid_before_utc
    assert dt.timedelta(minutes=59) < age < dt.timedelta(minutes=61)  # backdated one hour
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == pki_module.LEAF_DAYS
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == pki_module.CA_DAYS


def test_the_server_certificate_names_its_host_in_subject_alt_names(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    files = pki.issue_server("broker.example")
    san = load(files.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"broker.example", "localhost"}
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    eku = load(files.cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    by_ip = pki.issue_server("10.1.2.3")
    san = load(by_ip.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.1.2.3" in {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def handshake(pki: Pki, client: TlsFiles, server_host: str, connect_as: str) -> str:
    """A mutual TLS 1.3 handshake over a socket pair with Python's ssl as the server; the
    client's certificate CN as the server saw it."""
    server_files = pki.issue_server(server_host)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_files.cert, server_files.key)
    server_ctx.load_verify_locations(server_files.ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    left, right = socket.socketpair()
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as s:
                seen["peer"] = s.getpeercert()
                s.recv(1)
        except (ssl.SSLError, OSError) as error:
            seen["error"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with tls_context(client).wrap_socket(left, server_hostname=connect_as) as s:
            assert s.version() == "TLSv1.3"
            s.sendall(b"x")
    finally:
        thread.join(5)
    peer = seen["peer"]
    assert isinstance(peer, dict)
    return str(dict(field[0] for field in peer["subject"])["commonName"])


def test_certificates_pass_a_real_mutual_tls_handshake(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    assert handshake(pki, pki.issue_client("device-00001"), "127.0.0.1", "127.0.0.1") == (
        "device-00001"
    )
    assert handshake(pki, pki.issue_client("edge"), "127.0.0.1", "localhost") == "edge"
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(pki, pki.issue_client("edge"), "127.0.0.1", "elsewhere.example")


def test_private_keys_are_private_and_the_broker_key_is_shared_with_its_group(
    tmp_path: Path,
) -> None:
    pki = Pki(tmp_path / "pki")
    files = pki.issue_client("device-00001")
    server = pki.issue_server()
    assert mode(pki.ca_key) == 0o600 and mode(files.key) == 0o600
    assert mode(files.key.parent) == 0o700
    assert mode(files.cert) == 0o644 and mode(pki.ca_cert) == 0o644 and mode(pki.crl) == 0o644
    assert mode(pki.root) == 0o755
    try:
        gid: int | None = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        gid = None
    if os.geteuid() == 0 and gid is not None:
        assert server.key.stat().st_gid == gid and mode(server.key) == 0o640
        assert server.key.parent.stat().st_gid == gid and mode(server.key.parent) == 0o750
    else:  # no group to share with: owner only
        assert mode(server.key) in (0o600, 0o640)
    assert not list(pki.root.rglob(".*.tmp"))  # atomic writes leave nothing behind


def crl_of(pki: Pki) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(pki.crl.read_bytes())


def test_revocation_writes_a_signed_crl_with_the_serials(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.ensure_ca()
    ca = load(pki.ca_cert)
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert len(crl_of(pki)) == 0 and crl_of(pki).is_signature_valid(ca_key)
    files = pki.issue_many(["device-00001", "device-00002", "device-00003"])
    pki.revoke("device-00002")
    pki.revoke("device-00002")  # idempotent
    crl = crl_of(pki)
    assert crl.is_signature_valid(ca_key) and crl.issuer == ca.subject
    assert [e.serial_number for e in crl] == [load(files[1].cert).serial_number]
    left = crl.next_update_utc - dt.datetime.now(dt.UTC)  # type: ignore[operator]
    assert abs(left.days - pki_module.CRL_DAYS) <= 1
    pki.revoke("device-00003")
    assert pki.revoked() == {"device-00002", "device-00003"}
    assert len(crl_of(pki)) == 2
    with pytest.raises(ValueError, match="no certificate for 'device-09999'"):
        pki.revoke("device-09999")


def test_a_crl_near_its_next_update_is_signed_again_with_the_same_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = Pki(tmp_path)
    pki.issue_client("device-00001")
    monkeypatch.setattr(pki_module, "CRL_DAYS", 10)  # less than CRL_RENEW_DAYS (30)
    pki.revoke("device-00001")
    assert (crl_of(pki).next_update_utc - dt.datetime.now(dt.UTC)).days < 10  # type: ignore[operator]
    monkeypatch.undo()
    Pki(tmp_path).ensure_ca()
    crl = crl_of(pki)
    assert (crl.next_update_utc - dt.datetime.now(dt.UTC)).days >= 364  # type: ignore[operator]
    assert Pki(tmp_path).revoked() == {"device-00001"}


def test_issuing_again_reuses_files_and_keeps_a_revocation(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    first = pki.issue_many(["device-00001", "edge", "device-00001"])
    assert first[0] == first[2] and first[1] == pki.files("edge")
    before = {f.cert: f.cert.read_bytes() for f in first} | {pki.ca_cert: pki.ca_cert.read_bytes()}
    pki.revoke("device-00001")
    again = Pki(tmp_path).issue_many(["device-00001", "edge"])  # a fresh object: from files
    assert again == first[:2]
    assert {p: p.read_bytes() for p in before} == before  # nothing issued anew
    assert Pki(tmp_path).revoked() == {"device-00001"}


def test_a_certificate_from_another_ca_is_issued_anew(tmp_path: Path) -> None:
    mine, theirs = Pki(tmp_path / "mine"), Pki(tmp_path / "theirs")
    mine.ensure_ca()
    foreign = theirs.issue_client("device-00001")
    shutil.copy(foreign.cert, mine.root / "certs" / "device-00001.crt")
    shutil.copy(foreign.key, mine.root / "private" / "device-00001.key")
    files = mine.issue_client("device-00001")
    load(files.cert).verify_directly_issued_by(load(mine.ca_cert))
    assert files.cert.read_bytes() != foreign.cert.read_bytes()


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", ".hidden", "x" * 65, "a b", "é"])
def test_names_that_cannot_name_a_certificate_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="is not allowed: use 1-64 letters"):
        Pki(tmp_path).issue_many(["device-00001", bad])
    assert not (tmp_path / "certs").exists() or not list((tmp_path / "certs").iterdir())


def test_errors_say_what_is_missing(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    with pytest.raises(ValueError, match=r"issue it with Pki.issue_client\('edge'\)"):
        pki.files("edge")
    with pytest.raises(ValueError, match="neither an IP address nor a DNS name"):
        pki.issue_server("bad host")
    pki.ensure_ca()
    pki.ca_key.unlink()
    with pytest.raises(ValueError, match=r"ca\.crt exists but .*ca\.key does not"):
        Pki(tmp_path).ensure_ca()


def test_the_layout_enrols_devices_with_certificates(tmp_path: Path) -> None:
    layout = DeployLayout(tmp_path)
    devices = layout.enroll(5)
    edge = layout.edge()
    for identity in [*devices, edge]:
        cert = load(layout.tls_for(identity.device_id).cert)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == identity.device_id
    assert layout.pki.root == tmp_path / "deploy" / "pki"
    security = layout.broker_security(prefixes=("fleet1",))
    assert security.prefixes == ("fleet1",) and security.edge_id == "edge"
    assert security.crl == layout.pki.crl and security.server.cert.is_file()
    with pytest.raises(ValueError, match="no certificate for 'device-00077'"):
        layout.tls_for("device-00077")


def _enrol(root: str, go: Any) -> None:
    go.wait(10)
    Pki(root).issue_many([f"device-{i:05d}" for i in range(200)])


def test_processes_enrolling_at_once_share_one_ca(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    go = context.Event()
    workers = [context.Process(target=_enrol, args=(str(tmp_path), go)) for _ in range(3)]
    for worker in workers:
        worker.start()
    go.set()  # all at once
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    pki = Pki(tmp_path)
    ca = load(pki.ca_cert)
    for files in pki.issue_many([f"device-{i:05d}" for i in range(200)]):
        cert = load(files.cert)
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        assert key.public_key() == cert.public_key()
