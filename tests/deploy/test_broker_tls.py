"""The locked-down broker: a real Mosquitto with mutual TLS, per-device ACLs and a CRL, probed
by paho-mqtt clients (they report MQTT 5 reason codes, which aiomqtt hides) and by the
project's own aiomqtt clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tinylarge.deploy.broker import (
    DEFAULT_TLS_PORT,
    AclRule,
    Broker,
    BrokerAddress,
    acl_allows,
    acl_rules,
    acl_text,
    count_log,
    enforcement_lines,
    free_port,
    mosquitto_config,
    parse_broker_url,
    wait_listening,
)
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.mqtt import diagnose_refusal, persistent_client
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics

T = Topics("tinylarge")
NOT_AUTHORIZED = 0x87
WAIT_S = 5.0


# -- without a broker ----------------------------------------------------------------------


def test_mqtts_urls_default_to_port_8883() -> None:
    assert parse_broker_url("mqtts://broker.local") == BrokerAddress("broker.local", 8883, True)
    assert parse_broker_url("mqtts://10.0.0.5:18883").url == "mqtts://10.0.0.5:18883"
    assert parse_broker_url("mqtt://h").url == "mqtt://h:1883" and DEFAULT_TLS_PORT == 8883
    with pytest.raises(ValueError, match="mqtts://HOST:PORT for MQTT over TLS"):
        parse_broker_url("ssl://h:8883")


def test_the_acl_gives_each_device_its_own_topics_only() -> None:
    rules = acl_rules(["tinylarge"], "edge")
    assert AclRule(None, "write", "tinylarge/up/%u") in rules
    text = acl_text(["tinylarge"], "edge").splitlines()
    assert "pattern read tinylarge/down/%u" in text and "topic write tinylarge/down/+" in text
    assert text.index("user edge") > max(i for i, t in enumerate(text) if t.startswith("pattern"))
    d1 = "device-00001"
    assert acl_allows(rules, d1, "tinylarge/down/device-00001", "read")
    assert acl_allows(rules, d1, "tinylarge/up/device-00001", "write")
    for topic in ("tinylarge/down/device-00002", "tinylarge/down/+", "tinylarge/#", "#"):
        assert not acl_allows(rules, d1, topic, "read"), topic
    assert not acl_allows(rules, d1, "tinylarge/up/device-00001", "read")
    assert not acl_allows(rules, d1, "tinylarge/model", "write")
    assert acl_allows(rules, "edge", "tinylarge/up/+", "read")
    assert acl_allows(rules, "edge", "tinylarge/up/device-00001", "read")
    assert not acl_allows(rules, "edge", "tinylarge/#", "read")
    assert acl_allows(rules, "edge", "tinylarge/model", "write")
    with pytest.raises(ValueError, match="is not allowed"):
        acl_rules(["tinylarge"], "ed/ge")


def test_the_locked_down_config_has_no_plaintext_listener(tmp_path: Path) -> None:
    layout = DeployLayout(tmp_path)
    security = layout.broker_security()
    lines = mosquitto_config(8884, tmp_path, security=security).splitlines()
    for line in ("require_certificate true", "use_identity_as_username true",
                 "allow_anonymous false", "tls_version tlsv1.3", "set_tcp_nodelay true",
                 f"acl_file {tmp_path / 'acl'}", f"crlfile {security.crl.resolve()}",
                 f"keyfile {security.server.key.resolve()}"):  # fmt: skip
        assert line in lines, line
    assert [line for line in lines if line.startswith("listener")] == ["listener 8884 127.0.0.1"]
    assert "allow_anonymous true" not in lines
    assert not any("#" in line for line in lines)  # Mosquitto reads a trailing comment as a value
    plain = mosquitto_config(1884, tmp_path).splitlines()
    assert "allow_anonymous true" in plain and not any("require_cert" in x for x in plain)
    said = " ".join(enforcement_lines(security))
    for claim in ("TLS 1.3 only", "0 on the CRL", "anyone else may do nothing"):
        assert claim in said
    assert "no TLS" in enforcement_lines(None)[0]


def test_log_counts_by_hand() -> None:
    log = "\n".join(
        [
            "1: OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a certificate",
            "2: OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed",
            "3: Client connection from 127.0.0.1 failed: error:0A00010B:SSL routines::wrong "
            "version number.",
            "4: New client connected from 127.0.0.1:1 as thief (p5, c1, k60, u'device-00001').",
            "5: thief 1 #",
            "6: thief 1 tinylarge/down/device-00001",
            "7: Denied PUBLISH from thief (d0, q1, r0, m3, 'tinylarge/up/x', ... (1 bytes))",
        ]
    )
    assert count_log(log, None) == {
        "no_certificate": 1,
        "bad_certificate": 1,
        "not_tls": 1,
        "acl_denied": 1,  # the denied PUBLISH; without security no subscription is judged
        "connections": 1,
    }


# -- a real broker ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> DeployLayout:
    layout = DeployLayout(tmp_path_factory.mktemp("run"))
    layout.enroll(4)
    layout.edge()
    return layout


@pytest.fixture(scope="module")
def secure_broker(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: str, layout: DeployLayout
) -> Iterator[Broker]:
    """A locked-down broker whose files all sit below pytest's private (0700) directory."""
    broker = Broker(
        tmp_path_factory.mktemp("tls-broker"),
        executable=mosquitto,
        security=layout.broker_security(),
        debug_log=True,
    )
    with broker:
        yield broker


@dataclass
class Peer:
    """A paho MQTT 5 client that records what it gets: CONNACK, PUBACK and SUBACK codes,
    messages, and whether the broker dropped it."""

    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    acks: dict[int, int] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def wait_ack(self, mid: int) -> int:
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.acks, WAIT_S), f"no ack for {mid}"
            return self.acks[mid]

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK reason code of a QoS 1 publish."""
        return self.wait_ack(self.client.publish(topic, payload, qos=1).mid)

    def subscribe(self, topic: str) -> int:
        """The SUBACK reason code."""
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS and mid is not None
        return self.wait_ack(mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def peer(address: BrokerAddress, client_id: str, tls: TlsFiles | None, ca: Path | None) -> Peer:
    """Connect a paho client (``tls`` None with ``ca``: TLS without a certificate; both None:
    plaintext)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    p = Peer(client)
    if tls is not None:
        client.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
    elif ca is not None:
        client.tls_set(ca_certs=str(ca))

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: ReasonCode, pr: object) -> None:
        if not rc.is_failure:
            p.connected.set()

    def on_ack(c: mqtt.Client, u: object, mid: int, rc: object, pr: object) -> None:
        codes = rc if isinstance(rc, list) else [rc]
        with p.acked:
            p.acks[mid] = int(codes[0].value)  # type: ignore[union-attr]
            p.acked.notify_all()

    client.on_connect = on_connect
    client.on_disconnect = lambda *args: p.gone.set()
    client.on_publish = on_ack
    client.on_subscribe = on_ack
    client.on_message = lambda c, u, m: p.messages.append((m.topic, bytes(m.payload)))
    try:
        client.connect(address.host, address.port)
    except OSError:
        p.gone.set()  # refused in the handshake itself (TLS 1.2 would)
        return p
    client.loop_start()
    return p


def refused(p: Peer) -> bool:
    """Whether the broker dropped ``p`` without a CONNACK."""
    try:
        return p.gone.wait(WAIT_S) and not p.connected.is_set()
    finally:
        p.client.loop_stop()


def settle() -> None:
    """Give the broker time to deliver what it is going to deliver."""
    import time

    time.sleep(0.3)


def test_clients_without_a_certificate_are_refused(
    secure_broker: Broker, layout: DeployLayout
) -> None:
    address, ca = secure_broker.address, layout.pki.ca_cert
    before = secure_broker.log_counts()
    assert refused(peer(address, "nocert", None, ca))
    assert refused(peer(address, "plain", None, None))  # plaintext MQTT on the TLS port
    no_cert = diagnose_refusal(address, None)
    assert no_cert is not None and no_cert.reason == "no_certificate"
    plain = diagnose_refusal(replace(address, tls=False), None)
    assert plain is not None and plain.reason == "tls_required"
    assert "mqtts://" in str(plain)
    after = secure_broker.log_counts()
    assert after["no_certificate"] - before["no_certificate"] == 2  # paho's and the probe's
    assert after["not_tls"] - before["not_tls"] == 2
    assert after["connections"] == before["connections"]
    assert diagnose_refusal(address, layout.tls_for("device-00000")) is None  # a valid one


def test_a_stolen_certificate_reaches_only_its_own_device_topics(
    secure_broker: Broker, layout: DeployLayout
) -> None:
    address = secure_broker.address
    edge = peer(address, "edge", layout.tls_for("edge"), None)
    other = peer(address, "device-00002", layout.tls_for("device-00002"), None)
    thief = peer(address, "not-its-id", layout.tls_for("device-00001"), None)
    try:
        for p in (edge, other, thief):
            assert p.connected.wait(WAIT_S)
        assert edge.subscribe("tinylarge/hello/+") == edge.subscribe("tinylarge/up/+") == 1
        assert other.subscribe(T.down("device-00002")) == 1
        before = secure_broker.log_counts()["acl_denied"]
        # every SUBACK says "granted QoS 1": Mosquitto filters per message at delivery
        for topic in (T.down("device-00002"), "tinylarge/down/+", "tinylarge/#", "#"):
            assert thief.subscribe(topic) == 1
        forbidden = [T.up("device-00002"), T.hello("device-00002"), T.down("device-00002"),
                     T.welcome("device-00002"), T.model, T.edge, "elsewhere/x"]  # fmt: skip
        for topic in forbidden:
            assert thief.publish(topic, b"forged") == NOT_AUTHORIZED, topic
        assert thief.publish(T.up("device-00001"), b"own uplink") in (0, 0x10)
        assert edge.publish(T.down("device-00002"), b"for 2") in (0, 0x10)
        assert edge.publish(T.down("device-00001"), b"for 1") in (0, 0x10)
        settle()
        assert edge.messages == [(T.up("device-00001"), b"own uplink")]
        assert other.messages == [(T.down("device-00002"), b"for 2")]
        assert {m for m in thief.messages} == {(T.down("device-00001"), b"for 1")}
        denied = secure_broker.log_counts()["acl_denied"] - before
        assert denied == 4 + len(forbidden)  # 4 subscriptions, every forbidden publish
    finally:
        for p in (edge, other, thief):
            p.close()


def test_a_revoked_certificate_is_refused_after_a_reload(
    secure_broker: Broker, layout: DeployLayout
) -> None:
    address, name = secure_broker.address, "device-revoked-1"
    files = layout.pki.issue_client(name)
    assert diagnose_refusal(address, files) is None
    still_open = peer(address, name, files, None)
    assert still_open.connected.wait(WAIT_S)
    layout.pki.revoke(name)
    assert diagnose_refusal(address, files) is None  # the broker has not re-read its CRL
    before = secure_broker.log_counts()["bad_certificate"]
    secure_broker.reload()
    verdict = diagnose_refusal(address, files)
    assert verdict is not None and verdict.reason == "revoked"
    assert refused(peer(address, name + "-again", files, None))
    assert secure_broker.log_counts()["bad_certificate"] - before == 2
    try:  # a connection open at the reload survives it (TLS checked at the handshake only)
        assert still_open.publish(T.up(name), b"still here") in (0, 0x10)
    finally:
        still_open.close()
    assert diagnose_refusal(address, layout.tls_for("device-00003")) is None  # others go on


def test_a_device_reconnects_with_its_identity_after_a_broker_restart(
    secure_broker: Broker, layout: DeployLayout
) -> None:
    address, me = secure_broker.address, "device-00000"
    tls = layout.tls_for(me)

    async def main() -> list[bytes]:
        async with persistent_client(address, me, tls=tls) as client:
            await client.subscribe(T.down(me), qos=1)
        secure_broker.stop()
        secure_broker.start()
        edge = peer(address, "edge", layout.tls_for("edge"), None)
        assert edge.connected.wait(WAIT_S)
        assert edge.publish(T.down(me), b"while away") in (0, 0x10)
        got: list[bytes] = []
        async with persistent_client(address, me, tls=tls) as client:  # no new SUBSCRIBE
            assert edge.publish(T.down(me), b"after") in (0, 0x10)
            async with asyncio.timeout(WAIT_S):
                async for message in client.messages:
                    got.append(bytes(message.payload))
                    if len(got) == 2:
                        break
        edge.close()
        return got

    assert asyncio.run(main()) == [b"while away", b"after"]


def test_persistent_client_checks_the_address_against_the_certificate(
    layout: DeployLayout,
) -> None:
    with pytest.raises(ValueError, match="needs its certificate"):
        persistent_client(BrokerAddress("127.0.0.1", 8883, True), "device-00000")
    with pytest.raises(ValueError, match="is plaintext MQTT but a certificate was given"):
        persistent_client(BrokerAddress("127.0.0.1", 1883), "x", tls=layout.tls_for("edge"))


def test_log_counts_count_each_kind_of_refusal(
    tmp_path: Path, mosquitto: str, layout: DeployLayout
) -> None:
    name = "device-revoked-2"
    files = layout.pki.issue_client(name)
    layout.pki.revoke(name)
    broker = Broker(tmp_path, executable=mosquitto, security=layout.broker_security())
    with broker:
        address = broker.address
        assert refused(peer(address, "a", None, layout.pki.ca_cert))
        assert refused(peer(address, "b", None, None))
        assert refused(peer(address, "c", files, None))
        thief = peer(address, "d", layout.tls_for("device-00001"), None)
        assert thief.connected.wait(WAIT_S)
        thief.subscribe("#")
        assert thief.publish(T.up("device-00002"), b"x") == NOT_AUTHORIZED
        thief.close()
        assert broker.log_counts() == {
            "no_certificate": 1,
            "bad_certificate": 1,
            "not_tls": 1,
            "acl_denied": 1,  # the subscription; denied PUBLISHes need debug_log
            "connections": 1,
        }


def test_a_broker_that_drops_root_can_read_the_shared_files(mosquitto: str) -> None:
    """Started as root without ``user root``, Mosquitto becomes user ``mosquitto`` before it
    reads the key, CRL and ACL: the PKI shares them with group ``mosquitto``. Needs
    directories the ``mosquitto`` user can traverse, so not pytest's private one."""
    import os
    import pwd
    import shutil
    import subprocess
    import tempfile

    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no 'mosquitto' user to drop to")
    if os.geteuid() != 0:
        pytest.skip("only root drops to the 'mosquitto' user")
    top = Path(tempfile.mkdtemp(prefix="tinylarge-drop-"))
    try:
        top.chmod(0o755)
        layout = DeployLayout(top)
        layout.enroll(1)
        (top / "deploy").chmod(0o755)
        security = layout.broker_security()
        data = top / "broker"
        data.mkdir()
        os.chown(data, user.pw_uid, user.pw_gid)
        (data / "acl").write_text(acl_text(security.prefixes, security.edge_id))
        address = BrokerAddress("127.0.0.1", free_port(), True)
        conf = mosquitto_config(address.port, data, security=security)
        (data / "mosquitto.conf").write_text(conf.replace("user root\n", ""))
        process = subprocess.Popen([mosquitto, "-c", str(data / "mosquitto.conf")],
                                   stderr=subprocess.PIPE)  # fmt: skip
        try:
            wait_listening(address, 5)
            assert diagnose_refusal(address, layout.tls_for("device-00000")) is None
        finally:
            process.terminate()
            _, err = process.communicate(timeout=5)
        assert b"Permission denied" not in err and b"Unable to" not in err, err
    finally:
        shutil.rmtree(top)


def test_tls_contexts_are_shared_until_the_certificate_changes(layout: DeployLayout) -> None:
    import os

    from tinylarge.deploy.mqtt import tls_context

    files = layout.tls_for("device-00002")
    first = tls_context(files)
    assert tls_context(files) is first
    assert first.minimum_version.name == "TLSv1_3" and not first.hostname_checks_common_name
    stat = files.cert.stat()
    os.utime(files.cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert tls_context(files) is not first
    with pytest.raises(ValueError, match=r"TLS private key .* does not exist"):
        tls_context(replace(files, key=files.key.with_name("nobody.key")))


def test_a_plaintext_broker_reloads_and_refuses_to_reload_when_stopped(
    tmp_path: Path, mosquitto: str
) -> None:
    broker = Broker(tmp_path, executable=mosquitto)
    assert broker.pid is None
    with pytest.raises(RuntimeError, match="start it before reloading it"):
        broker.reload()
    with broker:
        assert broker.address.url.startswith("mqtt://")
        assert broker.pid is not None
        assert b"mosquitto" in Path(f"/proc/{broker.pid}/cmdline").read_bytes()
        broker.reload()
        broker.reload()
        assert broker.log_counts()["no_certificate"] == 0
    assert broker.pid is None
    assert broker.log.read_text().count("Reloading config.") == 2
