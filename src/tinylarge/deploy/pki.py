"""A project certificate authority for the broker's mutual TLS (X.509, RFC 5280).

One directory (``RUN_DIR/deploy/pki/`` in a run) holds everything:

=====================  ===========================================================  =======
file                   what                                                         mode
=====================  ===========================================================  =======
``ca.crt``             the project CA (P-256, ECDSA with SHA-256, 10 years)         0644
``ca.key``             its private key                                              0600
``crl.pem``            the certificate revocation list (always present)             0644
``certs/CN.crt``       a device's or the edge's certificate, CN = its id            0644
``private/CN.key``     its private key                                              0600
``server/HOST.crt``    the broker's certificate, DNS and IP subjectAltNames         0644
``server/HOST.key``    its private key (group ``mosquitto`` when that group exists) 0640
=====================  ===========================================================  =======

Mosquitto started as root drops to the ``mosquitto`` user before it reads ``keyfile`` and
``crlfile`` (mosquitto.conf(5), option ``user``), so the broker's key is group-readable by
``mosquitto`` and the directories it sits in are traversable; device keys stay 0600 in a 0700
directory. Every private key and the CRL are written to a temporary file and renamed into
place (``os.replace``): a broker re-reading the CRL on SIGHUP never sees half a file, and a
missing CRL would make Mosquitto keep running without revocation.

All keys are NIST P-256 (FIPS 186-4), signatures ECDSA with SHA-256: what Mosquitto, Python's
``ssl`` and microcontroller TLS stacks (mbed TLS, wolfSSL) all accept. Certificates start
`BACKDATE` before the moment they are made, so that a device whose clock is a little behind
still accepts them (RFC 5280 section 4.1.2.5: a certificate is not valid before notBefore).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import grp
import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Validity of the project CA, days (10 years).
CA_DAYS = 3650
#: Validity of device, edge and broker certificates, days: 825 is the longest the CA/Browser
#: Forum Baseline Requirements allowed for TLS server certificates from 2018 to 2020
#: (section 6.3.2); the same bound is used for clients.
LEAF_DAYS = 825
#: Validity of each CRL, days (RFC 5280 nextUpdate). Mosquitto refuses every client once the
#: CRL's nextUpdate has passed, so `Pki.ensure_ca` re-signs it when less than `CRL_RENEW_DAYS`
#: remain, and every `Pki.revoke` re-signs it too.
CRL_DAYS = 365
CRL_RENEW_DAYS = 30
#: How far back notBefore and the CRL's thisUpdate are set: tolerates device clocks up to an
#: hour behind.
BACKDATE = dt.timedelta(hours=1)
#: A certificate this close to its end is issued anew instead of reused.
RENEW_MARGIN = dt.timedelta(days=1)
#: The group Debian's and Fedora's packages run Mosquitto as.
BROKER_GROUP = "mosquitto"
CA_COMMON_NAME = "tinylarge project CA"
#: Certificate names: they become file names and MQTT topic levels (no '/', '+', '#'); at most
#: 64 characters (RFC 5280 ub-common-name).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")


@dataclass(frozen=True)
class TlsFiles:
    """What one TLS endpoint needs: PEM files."""

    ca: Path  # the project CA certificate
    cert: Path  # this endpoint's certificate
    key: Path  # its private key (mode 0600; 0640 group mosquitto for the broker's)


def check_common_name(common_name: str) -> str:
    """``common_name`` if it can name a certificate here; ``ValueError`` saying what is allowed."""
    if not isinstance(common_name, str) or not _NAME.fullmatch(common_name):
        raise ValueError(
            f"certificate name {common_name!r} is not allowed: use 1-64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (it becomes a file name and an MQTT "
            "topic level)"
        )
    return common_name


def _check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise ValueError(
            f"broker host {host!r} is neither an IP address nor a DNS name (letters, digits, "
            "'.', '-')"
        )
    return host


def _broker_gid() -> int | None:
    try:
        return grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return None


def _share_with_broker(path: Path, mode: int) -> None:
    """Give ``path`` to group `BROKER_GROUP` with ``mode``; leave it as it is when that group
    does not exist or this user may not hand files to it."""
    gid = _broker_gid()
    if gid is None:
        return
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        return
    os.chmod(path, mode)


def _write(path: Path, data: bytes, mode: int, *, broker_group: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``) with ``mode``;
    with ``broker_group`` the file goes to group `BROKER_GROUP` (mode as given) when possible,
    else it stays owner-only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    first = 0o600 if broker_group else mode  # group access only once the group is right
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, first & 0o600)
    try:
        os.fchmod(fd, first)
        os.write(fd, data)
    finally:
        os.close(fd)
    if broker_group:
        _share_with_broker(tmp, mode)
    os.replace(tmp, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Pki:
    """A project CA under a directory (see the module doc for its files).

    Parameters
    ----------
    root : path
        The directory (made on first use).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    def _client_paths(self, common_name: str) -> tuple[Path, Path]:
        return (
            self.root / "certs" / f"{common_name}.crt",
            self.root / "private" / f"{common_name}.key",
        )

    def _server_paths(self, host: str) -> tuple[Path, Path]:
        return self.root / "server" / f"{host}.crt", self.root / "server" / f"{host}.key"

    # -- the CA and its CRL ---------------------------------------------------------------

    def _make_dirs(self) -> None:
        for sub, mode in (("", 0o755), ("certs", 0o755), ("private", 0o700), ("server", 0o700)):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
        _share_with_broker(self.root / "server", 0o750)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold ``.lock`` (``flock``): processes enrolling into one directory at once (several
        fleet processes of a run) do not make two CAs or mix one name's key and certificate."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ensure_ca(self) -> None:
        """Make the CA (and an empty CRL) unless it exists; re-sign the CRL when it is missing
        or less than `CRL_RENEW_DAYS` from its nextUpdate. Idempotent.

        Raises
        ------
        ValueError
            When only one of ``ca.crt`` and ``ca.key`` exists (a CA cannot be rebuilt from
            half of it).
        """
        with self._locked():
            self._ensure_ca()

    def _ensure_ca(self) -> None:
        self._make_dirs()
        have = (self.ca_cert.is_file(), self.ca_key.is_file())
        if have == (True, True):
            self._load_ca()
        elif have == (False, False):
            self._create_ca()
        else:
            present, missing = (
                (self.ca_cert, self.ca_key) if have[0] else (self.ca_key, self.ca_cert)
            )
            raise ValueError(
                f"{present} exists but {missing} does not: restore {missing.name}, or delete "
                f"the whole directory {self.root} to start a new CA (every certificate it "
                "issued must then be issued again)"
            )
        if not self.crl.is_file():
            self._write_crl({})
            return
        crl = x509.load_pem_x509_crl(self.crl.read_bytes())
        next_update = crl.next_update_utc
        if next_update is None or next_update - _now() < dt.timedelta(days=CRL_RENEW_DAYS):
            self._write_crl(self._revoked_serials())

    def _create_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        subject = _name(CA_COMMON_NAME)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _key_usage(key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write(self.ca_key, _key_pem(key), 0o600)
        _write(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self._ca = (cert, key)

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca is None:
            if not self.ca_cert.is_file():
                raise ValueError(f"no CA under {self.root}: make it with Pki.ensure_ca()")
            cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self.ca_key} is not an elliptic-curve key")
            self._ca = (cert, key)
        return self._ca

    def _revoked_serials(self) -> dict[int, dt.datetime]:
        """Serial number -> revocation date of the CRL on file (empty when there is none)."""
        if not self.crl.is_file():
            return {}
        crl = x509.load_pem_x509_crl(self.crl.read_bytes())
        return {entry.serial_number: entry.revocation_date_utc for entry in crl}

    def _write_crl(self, revoked: dict[int, dt.datetime]) -> None:
        ca, key = self._load_ca()
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - BACKDATE)
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for serial, when in sorted(revoked.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(key, hashes.SHA256())
        _write(self.crl, crl.public_bytes(serialization.Encoding.PEM), 0o644)

    # -- leaf certificates ----------------------------------------------------------------

    def _sign_leaf(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey,
        usage: x509.ObjectIdentifier,
        names: Sequence[x509.GeneralName] = (),
    ) -> x509.Certificate:
        ca, ca_key = self._load_ca()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def _reusable(self, cert_path: Path, key_path: Path, revoked: dict[int, dt.datetime]) -> bool:
        """Whether the certificate on file can be handed out again: its key is there, this CA
        signed it, and it is revoked (revocation sticks to a name) or valid for a while."""
        if not (cert_path.is_file() and key_path.is_file()):
            return False
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca, ca_key = self._load_ca()
        try:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        except x509.ExtensionNotFound:
            return False
        ours = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
        if aki.key_identifier != ours.key_identifier or cert.issuer != ca.subject:
            return False
        return cert.serial_number in revoked or cert.not_valid_after_utc - _now() > RENEW_MARGIN

    def issue_many(self, common_names: Sequence[str]) -> list[TlsFiles]:
        """Client certificates (EKU clientAuth, CN = the name) for every name, in order: those
        on file are reused (see `issue_client`), the others made. Names are checked before
        anything is written.

        Raises
        ------
        ValueError
            For a name that cannot name a certificate (`check_common_name`).
        """
        names = [check_common_name(name) for name in common_names]
        with self._locked():
            self._ensure_ca()
            revoked = self._revoked_serials()
            for name in dict.fromkeys(names):
                cert_path, key_path = self._client_paths(name)
                if self._reusable(cert_path, key_path, revoked):
                    continue
                key = ec.generate_private_key(ec.SECP256R1())
                cert = self._sign_leaf(name, key, ExtendedKeyUsageOID.CLIENT_AUTH)
                _write(key_path, _key_pem(key), 0o600)
                _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return [self.files(name) for name in names]

    def issue_client(self, common_name: str) -> TlsFiles:
        """A device's or the edge's certificate (P-256, EKU clientAuth, CN = ``common_name``).

        Idempotent: the files on file are returned when this CA signed them and they are
        valid for more than `RENEW_MARGIN`. A revoked certificate is returned as it is:
        revocation sticks to the name (enrol the device under a new name, or delete its two
        files, to give it a fresh certificate).
        """
        (files,) = self.issue_many([common_name])
        return files

    def issue_server(self, host: str = "127.0.0.1") -> TlsFiles:
        """The broker's certificate (P-256, EKU serverAuth) for ``host``, reused when on file.

        Its subjectAltNames hold ``host`` (as an IP address or a DNS name) plus ``localhost``,
        ``127.0.0.1`` and ``::1``: clients check subjectAltNames, not the CN (RFC 6125 section
        6.4.4; Python's ``ssl`` with ``hostname_checks_common_name = False``).
        """
        _check_host(host)
        with self._locked():
            self._ensure_ca()
            cert_path, key_path = self._server_paths(host)
            if not self._reusable(cert_path, key_path, {}):
                self._issue_server(host, cert_path, key_path)
        return TlsFiles(self.ca_cert, cert_path, key_path)

    def _issue_server(self, host: str, cert_path: Path, key_path: Path) -> None:
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        addresses = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
        try:
            addresses.add(ipaddress.ip_address(host))
        except ValueError:
            names.insert(0, x509.DNSName(host))
        names += [x509.IPAddress(a) for a in sorted(addresses, key=str)]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign_leaf(host, key, ExtendedKeyUsageOID.SERVER_AUTH, names)
        _write(key_path, _key_pem(key), 0o640, broker_group=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def client_paths(self, common_name: str) -> TlsFiles:
        """Where the files of device or edge ``common_name`` are, or would be once issued or
        copied here (nothing is checked but the name)."""
        cert_path, key_path = self._client_paths(check_common_name(common_name))
        return TlsFiles(self.ca_cert, cert_path, key_path)

    def server_paths(self, host: str = "127.0.0.1") -> TlsFiles:
        """Where the broker's files for ``host`` are, or would be (nothing is checked but the
        host)."""
        cert_path, key_path = self._server_paths(_check_host(host))
        return TlsFiles(self.ca_cert, cert_path, key_path)

    def files(self, common_name: str) -> TlsFiles:
        """The files of a certificate already issued; ``ValueError`` saying how to make it."""
        cert_path, key_path = self._client_paths(check_common_name(common_name))
        if not (self.ca_cert.is_file() and cert_path.is_file() and key_path.is_file()):
            raise ValueError(
                f"no certificate for {common_name!r} under {self.root}: issue it with "
                f"Pki.issue_client({common_name!r}) (DeployLayout.enroll and DeployLayout.edge "
                "issue the fleet's and the edge's)"
            )
        return TlsFiles(self.ca_cert, cert_path, key_path)

    # -- revocation -----------------------------------------------------------------------

    def revoke(self, common_name: str) -> None:
        """Add the certificate of ``common_name`` to the CRL and rewrite ``crl.pem`` atomically.
        Idempotent. A running broker refuses it from its next reload (SIGHUP) on; connections
        open at that moment survive (Mosquitto checks the CRL in the TLS handshake only).

        Raises
        ------
        ValueError
            When the name has no certificate here.
        """
        cert_path = self.files(common_name).cert
        with self._locked():
            self._ensure_ca()
            serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
            revoked = self._revoked_serials()
            if serial not in revoked:
                revoked[serial] = _now()
                self._write_crl(revoked)

    def revoked(self) -> set[str]:
        """The names whose certificate on file is on the CRL."""
        serials = self._revoked_serials()
        if not serials:
            return set()
        names = set()
        for path in sorted((self.root / "certs").glob("*.crt")):
            if x509.load_pem_x509_certificate(path.read_bytes()).serial_number in serials:
                names.add(path.stem)
        return names
