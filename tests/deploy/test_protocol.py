"""Topics, reply payloads, MQTT packet sizes, broker URLs and key files: exact, by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.deploy.broker import mosquitto_config, parse_broker_url
from tinylarge.deploy.keys import load_identities, load_registry, save_identities, save_registry
from tinylarge.deploy.protocol import (
    Topics,
    check_device_id_for_topics,
    decode_reply,
    encode_reply,
    publish_packet_bytes,
    request_id,
)
from tinylarge.secure.identity import Identity


def test_topics_round_trip_and_refuse_what_is_not_a_device_topic() -> None:
    t = Topics("fleet1")
    assert t.up("device-00001") == "fleet1/up/device-00001"
    assert t.parse(t.hello("d")) == ("hello", "d") and t.parse(t.down("d")) == ("down", "d")
    for bad in ("fleet1/up/", "fleet1/model", "other/up/d", "fleet1/up/d/x", "fleet1/sideways/d"):
        with pytest.raises(ValueError, match="is not a per-device topic"):
            t.parse(bad)
    with pytest.raises(ValueError, match="no '/', '\\+', '#' or NUL"):
        check_device_id_for_topics("a/b")
    with pytest.raises(ValueError, match="without \\+ or #"):
        Topics("a/#")


def test_reply_payload_by_hand() -> None:
    payload = encode_reply(0x01020304, 5, [0.25, -1.0, 100.0, -100.0, 0.1, 0, 0, 0])
    assert payload[:5] == bytes([4, 3, 2, 1, 5])  # uint32 little-endian, then the class
    assert payload[5:].hex() == "01fc7f8000000000"  # 1, -4, saturated 127 and -128, round(0.4)=0
    request, answer, logits = decode_reply(payload, 8)
    assert (request, answer) == (0x01020304, 5)
    np.testing.assert_array_equal(logits, [0.25, -1.0, 31.75, -32.0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="a reply for 8 classes is 13 bytes, got 12"):
        decode_reply(payload[:-1], 8)
    with pytest.raises(ValueError, match="reply class 9 is not in"):
        decode_reply(payload[:4] + bytes([9]) + payload[5:], 8)
    assert request_id(2**32 + 7) == 7


def test_publish_packet_size_follows_mqtt5() -> None:
    # fixed header 1 + varint 1; topic 2 + 3; packet id 2; property length 1; payload 100
    assert publish_packet_bytes("a/b", 100) == 1 + 1 + (2 + 3 + 2 + 1 + 100)
    assert publish_packet_bytes("a/b", 100, qos=0) == 1 + 1 + (2 + 3 + 1 + 100)
    assert publish_packet_bytes("t", 200) == 1 + 2 + (2 + 1 + 2 + 1 + 200)  # 206 needs 2 bytes


def test_broker_urls_say_what_is_allowed() -> None:
    assert parse_broker_url("mqtt://10.0.0.5:1884").port == 1884
    assert parse_broker_url("mqtt://broker.local").port == 1883
    for bad in ("tcp://h:1", "mqtt://", "mqtt://h:99999", "mqtt://h:1/path", "h:1883"):
        with pytest.raises(ValueError, match="mqtt://HOST:PORT"):
            parse_broker_url(bad)


def test_generated_config_sets_what_the_measurements_require(tmp_path: Path) -> None:
    conf = mosquitto_config(1884, tmp_path)
    for line in ("listener 1884 127.0.0.1", "set_tcp_nodelay true", "persistence true",
                 f"persistence_location {tmp_path}/", "max_queued_messages 1000000"):  # fmt: skip
        assert line in conf.splitlines()


def test_key_files_round_trip_and_private_keys_are_private(tmp_path: Path) -> None:
    ids = [Identity.generate(f"device-{i}") for i in range(3)]
    save_identities(tmp_path / "keys.json", ids)
    save_registry(tmp_path / "registry.json", ids)
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    loaded = load_identities(tmp_path / "keys.json")
    assert [i.device_id for i in loaded] == [i.device_id for i in ids]
    assert loaded[1].sign(b"m") == ids[1].sign(b"m")  # Ed25519 is deterministic
    registry = load_registry(tmp_path / "registry.json")
    assert len(registry) == 3 and registry.public_key("device-2") == ids[2].public_key
    with pytest.raises(ValueError, match="not a tinylarge-registry-1 file"):
        load_registry(tmp_path / "keys.json")


def test_the_metrics_endpoint_speaks_prometheus_text() -> None:
    import urllib.request

    from tinylarge.deploy.broker import free_port
    from tinylarge.deploy.metrics_endpoint import EdgeMetrics

    metrics = EdgeMetrics()
    port = free_port()
    metrics.serve_http(port)
    metrics.requests.inc(3)
    metrics.rejected.labels("Replay").inc()
    metrics.batch_size.observe(4)
    metrics.model_version.set(2)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "tinylarge_edge_requests_total 3.0" in text
    assert 'tinylarge_edge_rejected_total{reason="Replay"} 1.0' in text
    assert 'tinylarge_edge_batch_size_bucket{le="4.0"} 1.0' in text
    assert "tinylarge_edge_model_version 2.0" in text


def test_a_missing_mosquitto_says_how_to_install_it(tmp_path: Path) -> None:
    from tinylarge.deploy.broker import Broker

    with pytest.raises(FileNotFoundError, match="apt-get install mosquitto"):
        Broker(tmp_path, executable="no-such-mosquitto-here").start()


def test_the_edge_service_fit_by_hand() -> None:
    from tinylarge.deploy.server import service_fit

    sizes = np.array([1, 2, 4, 8])
    assert service_fit(sizes, 0.001 + 0.0005 * sizes) == pytest.approx(
        {"setup_s": 0.001, "per_item_s": 0.0005}
    )
    assert service_fit(np.array([1, 1]), np.array([0.002, 0.004])) == {
        "setup_s": 0.0,
        "per_item_s": pytest.approx(0.003),
    }
    noisy = service_fit(np.array([1, 2, 3]), np.array([0.003, 0.002, 0.001]))
    assert noisy == {"setup_s": pytest.approx(0.002), "per_item_s": 0.0}
    assert service_fit(np.zeros(0, np.int64), np.zeros(0)) is None
