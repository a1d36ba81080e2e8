"""A local Mosquitto broker as a child process, and broker addresses (``mqtt://HOST:PORT``).

Mosquitto is the reference MQTT broker (Eclipse; https://mosquitto.org). The generated config
follows what was measured on these machines:

- ``set_tcp_nodelay true``: without TCP_NODELAY on both sides a QoS 1 request/reply round trip
  takes 44-92 ms (Nagle's algorithm + delayed ACK) instead of about 0.5 ms;
- ``max_queued_messages``: the default (1000) silently drops QoS 1 messages for a slow or
  offline subscriber (mosquitto.conf(5));
- persistence on, with ``autosave_interval``: a SIGTERM saves ``mosquitto.db``; a SIGKILL loses
  what was not autosaved, so the application layer re-sends (at-least-once);
- started as root, Mosquitto drops to the ``mosquitto`` user, which then cannot write a data
  directory below a private (0700) one such as a test's temporary directory; as root the config
  says ``user root`` (a local child broker of the user's own process).

Given a `BrokerSecurity`, the broker is locked down (mosquitto.conf(5)): one TLS 1.3 listener
and no plaintext one, a client certificate from the project CA required
(``require_certificate``), its CN taken as the MQTT username (``use_identity_as_username``),
anonymous clients refused, a CRL (``crlfile``, re-read on SIGHUP: `Broker.reload`) and a
per-device topic ACL (``acl_file``, `acl_text`). Mosquitto enforces the ACL per message: a
SUBSCRIBE outside it is still granted but delivers nothing, a PUBLISH outside it is dropped
(an MQTT 5 QoS 1 publisher gets PUBACK reason 0x87 "Not authorized").
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509

from tinylarge.deploy.pki import Pki, TlsFiles, check_common_name
from tinylarge.deploy.protocol import Topics

#: What to tell a user whose machine has no Mosquitto.
INSTALL_HINT = (
    "Mosquitto is not installed (no 'mosquitto' on PATH). Install it with "
    "'apt-get install mosquitto' (Debian/Ubuntu), 'brew install mosquitto' (macOS) or see "
    "https://mosquitto.org/download/; or point --broker at a running MQTT broker"
)
#: IANA's ports for MQTT and for MQTT over TLS (secure-mqtt).
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


@dataclass(frozen=True)
class BrokerAddress:
    """Where an MQTT broker listens; ``tls``: it speaks MQTT over TLS only."""

    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://HOST[:PORT]`` (port 1883) or ``mqtts://HOST[:PORT]`` (TLS, port 8883) ->
    `BrokerAddress`; ``ValueError`` saying what is allowed."""
    parts = urlsplit(url)
    allowed = (
        "expected mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883, or mqtts://HOST:PORT for "
        "MQTT over TLS, e.g. mqtts://broker.local:8883"
    )
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"broker URL {url!r}: {allowed}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"broker URL {url!r} has parts MQTT does not use; {allowed}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    except ValueError:
        raise ValueError(f"broker URL {url!r}: the port must be 1..65535; {allowed}") from None
    return BrokerAddress(parts.hostname, port, tls)


@dataclass(frozen=True)
class BrokerSecurity:
    """What makes a locked-down broker: its certificate and key with the project CA, the CRL,
    the topic prefixes the ACL covers and the edge's certificate name."""

    server: TlsFiles
    crl: Path
    prefixes: tuple[str, ...] = ("tinylarge", "tinylarge/lm")
    edge_id: str = "edge"

    def __post_init__(self) -> None:
        if not self.prefixes:
            raise ValueError("the broker's ACL needs at least one topic prefix")
        for prefix in self.prefixes:
            Topics(prefix)  # raises for a prefix that cannot stand in a topic
        check_common_name(self.edge_id)

    @classmethod
    def from_pki(
        cls,
        pki: Pki,
        prefixes: Sequence[str] = ("tinylarge", "tinylarge/lm"),
        edge_id: str = "edge",
        host: str = "127.0.0.1",
    ) -> BrokerSecurity:
        """The broker's security from a project CA (its server certificate for ``host`` is
        issued on first use)."""
        return cls(pki.issue_server(host), pki.crl, tuple(prefixes), edge_id)


Access = Literal["read", "write", "readwrite"]


@dataclass(frozen=True)
class AclRule:
    """One line of a Mosquitto ACL: ``user`` None is a pattern for every client, in which
    ``%u`` stands for the client's username (here: its certificate's CN)."""

    user: str | None
    access: Access
    topic: str


def acl_rules(prefixes: Sequence[str], edge_id: str) -> list[AclRule]:
    """The ACL of a locked-down deployment, per prefix ``P`` (`tinylarge.deploy.protocol.Topics`).

    A device (any certificate; ``%u`` = its CN) may write ``P/hello/%u`` and ``P/up/%u`` and
    read ``P/welcome/%u``, ``P/down/%u``, ``P/model`` and ``P/edge``. The edge may read every
    hello and uplink, write every welcome and downlink, and read and write ``P/model`` and
    ``P/edge`` (retained). Nothing else is granted to anyone.
    """
    check_common_name(edge_id)
    device: list[AclRule] = []
    edge: list[AclRule] = []
    for prefix in prefixes:
        t, me, any_ = Topics(prefix), "%u", "+"
        device += [
            AclRule(None, "write", t.hello(me)),
            AclRule(None, "write", t.up(me)),
            AclRule(None, "read", t.welcome(me)),
            AclRule(None, "read", t.down(me)),
            AclRule(None, "read", t.model),
            AclRule(None, "read", t.edge),
        ]
        edge += [
            AclRule(edge_id, "read", t.hello(any_)),
            AclRule(edge_id, "read", t.up(any_)),
            AclRule(edge_id, "write", t.welcome(any_)),
            AclRule(edge_id, "write", t.down(any_)),
            AclRule(edge_id, "readwrite", t.model),
            AclRule(edge_id, "readwrite", t.edge),
        ]
    return device + edge


def acl_text(prefixes: Sequence[str], edge_id: str) -> str:
    """The text of the Mosquitto ``acl_file`` for `acl_rules` (patterns first, then the
    edge's ``user`` section; comments only on their own lines, as mosquitto.conf(5) needs).

    The topics every device may read (``P/model``, ``P/edge``) are ``pattern`` lines too:
    ``topic`` lines before the first ``user`` line apply to anonymous clients only
    (mosquitto.conf(5), ``acl_file``). Mosquitto warns at each (re)load that these patterns
    hold no ``%u``; the warning is expected.
    """
    rules = acl_rules(prefixes, edge_id)
    lines = ["# devices: %u is the client's certificate CN (use_identity_as_username)"]
    lines += [f"pattern {r.access} {r.topic}" for r in rules if r.user is None]
    lines += ["", "# the edge", f"user {edge_id}"]
    lines += [f"topic {r.access} {r.topic}" for r in rules if r.user is not None]
    return "\n".join([*lines, ""])


def _covers(rule: str, topic_filter: str) -> bool:
    """Whether every topic that ``topic_filter`` matches also matches ``rule`` (MQTT 5.0
    section 4.7 wildcards)."""
    want, have = rule.split("/"), topic_filter.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or have[i] == "#" or (level != "+" and level != have[i]):
            return False
    return len(have) == len(want)


def acl_allows(rules: Sequence[AclRule], username: str, topic_filter: str, access: Access) -> bool:
    """Whether ``rules`` give ``username`` ``access`` to every topic ``topic_filter`` matches."""
    for rule in rules:
        if rule.user not in (None, username) or access not in rule.access:
            continue
        if _covers(rule.topic.replace("%u", username), topic_filter):
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: The ``log_type`` lines of a locked-down broker: ``error`` holds the TLS refusals
#: (``OpenSSL Error``), ``notice`` one line per connection and the username of each client,
#: ``information`` "Reloading config." and database saves, ``subscribe`` one line per
#: subscription. All are per connection or per subscription, not per message; ``debug`` (one
#: line per message, and "Denied PUBLISH") only when asked for.
TLS_LOG_TYPES = ("error", "warning", "notice", "information", "subscribe")


def _tls_lines(security: BrokerSecurity, acl_file: Path) -> tuple[list[str], list[str]]:
    for path in (security.server.ca, security.server.cert, security.server.key, security.crl):
        if "\n" in str(path):
            raise ValueError(f"a path in mosquitto.conf cannot hold a line break: {path!r}")
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {acl_file}",
    ], [
        f"cafile {security.server.ca.resolve()}",
        f"certfile {security.server.cert.resolve()}",
        f"keyfile {security.server.key.resolve()}",
        f"crlfile {security.crl.resolve()}",
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.3",  # a minimum in Mosquitto 2.0
    ]


def mosquitto_config(
    port: int,
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    security: BrokerSecurity | None = None,
    debug_log: bool = False,
) -> str:
    """The text of a mosquitto.conf for one listener with persistence in ``data_dir``.

    Without ``security`` the listener is plaintext MQTT and anonymous clients may do
    anything. With it, the one listener speaks TLS 1.3 only and the ACL is
    ``data_dir/acl`` (written by `Broker.start`; `acl_text`). ``debug_log`` adds
    ``log_type debug``: one line per message, needed to count denied PUBLISHes.
    """
    general: list[str] = []
    tls: list[str] = []
    log_types: tuple[str, ...] = ("error", "warning", "information")
    if security is not None:
        general, tls = _tls_lines(security, data_dir / "acl")
        log_types = TLS_LOG_TYPES
    return "\n".join(
        [
            *(["user root"] if os.geteuid() == 0 else []),
            *general,
            f"listener {port} {host}",
            *tls,
            *([] if security is not None else ["allow_anonymous true"]),
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 1",  # seconds: what a SIGKILL of the broker can lose
            "set_tcp_nodelay true",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",  # no cap: the clients' own windows bound it
            "log_dest stderr",
            *(f"log_type {kind}" for kind in log_types),
            *(["log_type debug"] if debug_log else []),
            "",
        ]
    )


def enforcement_lines(security: BrokerSecurity | None) -> list[str]:
    """What a broker with ``security`` enforces, a sentence a line (for `tinylarge broker`)."""
    if security is None:
        return [
            "plaintext MQTT: no TLS, no client certificates, no topic ACL - anyone who "
            "reaches the port may publish and subscribe to every topic"
        ]
    crl = x509.load_pem_x509_crl(security.crl.read_bytes())
    prefixes = ", ".join(security.prefixes)
    return [
        "MQTT over TLS 1.3 only; no plaintext listener",
        f"a client certificate signed by the project CA ({security.server.ca}) is required; "
        "its CN is the client's MQTT username; anonymous clients are refused",
        f"revoked certificates are refused: {len(list(crl))} on the CRL ({security.crl}), "
        "re-read on reload (SIGHUP); connections open at a reload stay open",
        f"topic ACL under {prefixes}: a device may publish only on P/hello/<CN> and "
        "P/up/<CN>, and receive only P/welcome/<CN>, P/down/<CN>, P/model and P/edge",
        f"the edge ('{security.edge_id}') may receive every hello and uplink, publish every "
        "welcome and downlink, and publish P/model and P/edge; anyone else may do nothing",
        "a message outside the ACL is dropped (QoS 1 MQTT 5 publishers get PUBACK 0x87); a "
        "subscription outside it is granted but delivers nothing",
    ]


#: What Mosquitto 2.0 logs (``information``) when SIGHUP makes it reload.
RELOAD_LINE = "Reloading config."
_CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(.*u'([^']*)'\)")
_SUBSCRIBED = re.compile(r"^\d+: (\S+) \d (\S+)$")


def count_log(text: str, security: BrokerSecurity | None) -> dict[str, int]:
    """The counts of `Broker.log_counts` in the text of a ``mosquitto.log``."""
    counts = {
        "no_certificate": text.count("peer did not return a certificate"),
        "bad_certificate": text.count("certificate verify failed"),
        "not_tls": text.count("wrong version number"),
        "acl_denied": text.count("Denied PUBLISH from"),
        "connections": 0,
    }
    rules = [] if security is None else acl_rules(security.prefixes, security.edge_id)
    users: dict[str, str] = {}  # client id -> username (certificate CN)
    for line in text.splitlines():
        if connected := _CONNECTED.search(line):
            users[connected[1]] = connected[2]
            counts["connections"] += 1
        elif security is not None and (subscribed := _SUBSCRIBED.match(line)):
            client, topic_filter = subscribed[1], subscribed[2]
            if client in users and not acl_allows(rules, users[client], topic_filter, "read"):
                counts["acl_denied"] += 1
    return counts


def wait_listening(address: BrokerAddress, timeout_s: float) -> None:
    """Return when ``address`` accepts TCP connections; ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((address.host, address.port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no MQTT broker accepted connections at {address.url} within {timeout_s} s"
                ) from None
            time.sleep(0.02)


class Broker:
    """A Mosquitto child process; use as a context manager or call `start` / `stop`.

    Parameters
    ----------
    data_dir : path
        Holds the generated ``mosquitto.conf`` (and ``acl``), the persistence database and
        ``mosquitto.log``.
    port : int, optional
        The port (default: a free one).
    executable : str
        The broker program (default ``mosquitto`` on PATH).
    host : str
        The address it listens on: ``127.0.0.1`` (default, this machine only) or an
        interface's address, ``0.0.0.0`` for all (other machines' devices and edge). Its own
        `address` is then the loopback one.
    security : BrokerSecurity, optional
        Lock the broker down (TLS only, client certificates, CRL, ACL; see the module doc);
        its address is then ``mqtts://``.
    debug_log : bool
        Log every message (``log_type debug``): `log_counts` then counts denied PUBLISHes
        too. For tests; a busy broker's log grows by several lines per message.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        executable: str = "mosquitto",
        security: BrokerSecurity | None = None,
        debug_log: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.security, self.debug_log = security, debug_log
        self.listen_host = host
        self.address = BrokerAddress(
            "127.0.0.1" if host in ("0.0.0.0", "::") else host,
            port or free_port(),
            security is not None,
        )
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._log_start: int | None = None  # where this broker's part of mosquitto.log begins

    @property
    def log(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the running Mosquitto; None when it is not running."""
        return self._process.pid if self._process is not None and self.running else None

    def start(self, timeout_s: float = 10.0) -> BrokerAddress:
        """Start the broker and wait until it listens; ``RuntimeError`` if it exits."""
        if self.running:
            return self.address
        program = shutil.which(self.executable)
        if program is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.data_dir.resolve()
        if self.security is not None:
            acl = data_dir / "acl"
            acl.write_text(acl_text(self.security.prefixes, self.security.edge_id))
            acl.chmod(0o644)  # read by the `mosquitto` user when Mosquitto drops root
        conf = self.data_dir / "mosquitto.conf"
        text = mosquitto_config(
            self.address.port,
            data_dir,
            host=self.listen_host,
            security=self.security,
            debug_log=self.debug_log,
        )
        conf.write_text(text)
        if self._log_start is None:
            self._log_start = self.log.stat().st_size if self.log.is_file() else 0
        log = self.log.open("ab")
        self._process = subprocess.Popen([program, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with code {self._process.returncode} at start; "
                        f"its log: {self.data_dir / 'mosquitto.log'}"
                    )
                try:
                    wait_listening(self.address, 0.1)
                    return self.address
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (Mosquitto saves its database), SIGKILL if it does not exit in time."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def reload(self, timeout_s: float = 5.0) -> None:
        """SIGHUP: the broker re-reads its config, the CRL and the ACL; connections stay open
        (a revoked client already connected keeps its connection until it drops). Returns
        once the broker has logged the reload; every connection it accepts after that is
        checked against the new CRL (Mosquitto's main loop reloads before it accepts more).

        Raises
        ------
        RuntimeError
            When the broker is not running.
        TimeoutError
            When it did not log the reload within ``timeout_s``.
        """
        if self._process is None or not self.running:
            raise RuntimeError("the broker is not running: start it before reloading it")
        before = self._log_text().count(RELOAD_LINE)
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while self._log_text().count(RELOAD_LINE) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not log a reload within {timeout_s} s")
            time.sleep(0.01)

    def _log_text(self) -> str:
        if not self.log.is_file():
            return ""
        with self.log.open("rb") as f:
            f.seek(self._log_start or 0)
            return f.read().decode("utf-8", "replace").replace("\0", "")

    def log_counts(self) -> dict[str, int]:
        """What this broker refused (and accepted), counted from its ``mosquitto.log``.

        ``no_certificate``
            TLS handshakes refused because the client sent no certificate.
        ``bad_certificate``
            TLS handshakes refused because the client's certificate failed verification:
            revoked, expired, not yet valid or signed by another CA. Mosquitto 2.0 logs all of
            these as "certificate verify failed", so the log cannot tell a revoked certificate
            from the others (the client is told: `tinylarge.deploy.mqtt.diagnose_refusal`).
        ``not_tls``
            Connections that did not speak TLS at all (plaintext MQTT on the TLS port).
        ``acl_denied``
            Subscriptions the ACL serves nothing of (granted by the broker, which filters per
            message), plus, with ``debug_log``, PUBLISHes it dropped.
        ``connections``
            MQTT connections accepted (CONNACK sent).

        All counts start when this `Broker` first started. A plaintext broker does not log
        connections (no ``log_type notice``) and refuses nobody: its counts stay 0.
        """
        return count_log(self._log_text(), self.security)

    def kill(self) -> None:
        """SIGKILL, as a crash would (what was not autosaved is lost)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
