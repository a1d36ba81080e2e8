"""`tinylarge deploy` on the smoke preset: broker, edge server and fleet as real processes; and
the deployed system against the simulator, request by request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tinylarge.cli.main import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, mosquitto: str) -> Path:
    out = tmp_path_factory.mktemp("deploy")
    args = "deploy --preset smoke --devices 12 --duration 4 --overwrite --update-every 40"
    result = CliRunner().invoke(app, [*args.split(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_deploy_writes_every_contract_key_and_loses_nothing(deployed: Path) -> None:
    d: dict[str, Any] = json.loads((deployed / "metrics.json").read_text())["deploy"]
    for key in ("requests", "answered", "answered_by_edge", "timed_out", "lost", "accuracy",
                "offload_fraction", "bytes_up_per_inference", "bytes_down_per_inference",
                "rejected", "model_versions", "devices"):  # fmt: skip
        assert key in d, key
    assert set(d["latency_s"]) == {"p50", "p95", "p99"}
    assert {"requests_per_s", "mean_batch", "max_batch"} <= set(d["edge"])
    assert d["devices"] == 12 and d["lost"] == 0 and d["answered"] == d["requests"] > 20
    assert d["answered_by_edge"] > 0 and d["timed_out"] == 0 and d["rejected"] == {}
    assert sum(d["model_versions"].values()) == 12
    # over the locked-down broker (the default transport), which refused nobody
    assert d["transport"] == "mqtt-tls" and d["broker"].startswith("mqtts://")
    assert d["broker_refused"] == {"no_certificate": 0, "revoked": None, "acl_denied": 0}
    assert (deployed / "report.html").read_text().count("data:image/png;base64") >= 2


def test_the_deployed_system_decides_and_answers_as_the_simulator(deployed: Path) -> None:
    from tinylarge.deploy.artefacts import load_run
    from tinylarge.deploy.summary import load_records
    from tinylarge.deploy.twin import deployment_requests
    from tinylarge.integrate.inference.contract import Trace
    from tinylarge.models.evaluation import predict_logits
    from tinylarge.secure.costs import protocol_overhead, run_device_id
    from tinylarge.tiny.mcu import MCU_PROFILES
    from tinylarge.tiny.runtime import run as run_int8

    run = load_run(deployed / "run")
    records, labels, _ = load_records(deployed / "fleet_records.npz")
    task, requests = deployment_requests(run.scenario, 12, rate_per_device_hz=1.0, duration_s=4)
    # the fleet replayed the simulator's requests: same devices, frames and arrival times
    order = np.argsort(requests.arrival_s, kind="stable")
    np.testing.assert_array_equal(records.device, requests.device[order])
    np.testing.assert_array_equal(records.sample, requests.sample[order])
    np.testing.assert_array_equal(labels, task.y_test[records.sample])
    # the simulator's trace for these frames: int8 runtime, the large model on the int8 frame
    first = records.model_version == 0  # before any pushed model
    x_q = run.tiny.quantize_input(task.x_test[records.sample])
    spec = run.tiny.input_spec
    large = predict_logits(run.model("large"), (x_q.astype(np.float32) - spec.zero_point)
                           * np.float32(spec.scale))  # fmt: skip
    trace = Trace(
        tiny_logits=run.tiny.dequantize_output(run_int8(run.tiny, x_q).reshape(len(x_q), -1)),
        large_logits=large,
        y=labels,
    )
    decision = run.policy("router").decide(trace, np.arange(len(x_q)), np.random.default_rng(0))
    np.testing.assert_array_equal(records.offload[first], decision.offload[first])
    np.testing.assert_array_equal(records.answer[first], decision.prediction[first])
    # bytes per message: the simulator's accounting of the same messages
    overhead = protocol_overhead(run_device_id(11, 12), MCU_PROFILES[run.scenario.tiny.target_mcu])
    up = records.offload
    assert (records.bytes_up[up] == overhead.wire_bytes(spec.size)).all()
    reply = int(np.unique(records.bytes_down[up])[0])
    assert reply == overhead.wire_bytes(13) and (records.bytes_down[~up] == 0).all()


@pytest.fixture(scope="module")
def emulated(deployed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy-emulated")
    args = "deploy --preset smoke --devices 30 --duration 8 --overwrite --emulate-link"
    result = CliRunner().invoke(app, [*args.split(), "--run", str(deployed / "run"),
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_with_the_link_emulated_the_simulator_predicts_the_running_system(emulated: Path) -> None:
    d: dict[str, Any] = json.loads((emulated / "metrics.json").read_text())["deploy"]
    c = d["sim_vs_real"]
    assert d["lost"] == 0 and c["requests"] == d["requests"] > 20
    # the same requests decided, delivered (or lost on the air), answered and paid for
    assert c["same_decisions"] and c["same_deliveries"]
    for key in ("accuracy", "offload_fraction", "fell_back_fraction", "bytes_up_per_inference",
                "transport_bytes_up_per_inference"):  # fmt: skip
        assert c[key]["sim"] == c[key]["real"], key
    # over TCP: the MQTT PUBLISH packets (in TLS records over mqtts://) around the messages
    tcp = c["transport_bytes_up_per_inference"]["real"]
    assert tcp > c["bytes_up_per_inference"]["real"] > 0
    # latency: with the transport (broker relays) measured on the running system, the
    # simulator predicts the distribution (the goal is 15 %). Tolerance for 240 requests
    # on a loaded 2-core machine: the p50 falls among on-device answers, whose simulated
    # latency is the MCU time exactly, while the agents wake up to ~0.4 ms off their instant.
    # The p99 of 240 requests is their third largest latency: one stall of the agents' event
    # loops moves it by half (measured: ratio 0.56-0.98 over runs of the same code), so only a
    # gross error fails it here; benchmarks/bench_deploy.py --emulate-link measures the p99 on
    # 500+ requests per load.
    for q in ("p50", "p95"):
        part = c["latency_s"][q]
        assert 0.7 <= part["ratio"] <= 1.25, (q, part)
    assert 0.4 <= c["latency_s"]["p99"]["ratio"] <= 2.0, c["latency_s"]["p99"]
    lateness = c["round_trip_split"]["agent_lateness_s"]
    assert abs(lateness["p50"]) < 0.5e-3, lateness  # the agents act on their instants
    # without it the simulator is below the measurement: the transport is the residual
    assert c["without_transport"]["p99"]["ratio"] < c["latency_s"]["p99"]["ratio"]
    split = c["round_trip_split"]  # every edge answer joined with the edge's own log
    assert split["matched"] == d["answered_by_edge"] > 0
    assert 0 < split["transport_s"]["p50"] < split["round_trip_s"]["p50"]
    fit = c["edge_service"]  # measured on the deployed server's batches
    assert fit["setup_s"] >= 0 and fit["per_item_s"] >= 0 and fit["setup_s"] + fit["per_item_s"] > 0
    report = (emulated / "report.html").read_text()
    assert "Simulator against the running system" in report


def test_the_edge_server_process_killed_with_sigkill_mid_run_loses_nothing(
    deployed: Path, tmp_path: Path, mosquitto: str
) -> None:
    """The real `tinylarge serve` process, SIGKILLed while devices offload and an attacker
    floods it, then restarted: every request ends answered by an edge or by its device."""
    import asyncio
    import signal
    import subprocess
    import sys
    import time

    import aiomqtt

    from tinylarge.deploy.artefacts import load_run
    from tinylarge.deploy.broker import Broker
    from tinylarge.deploy.device import FleetConfig
    from tinylarge.deploy.fleet import Fleet
    from tinylarge.deploy.keys import edge_public_key
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.protocol import Topics
    from tinylarge.deploy.records import BY_EDGE, TIMED_OUT
    from tinylarge.deploy.twin import deployment_state

    run_dir = deployed / "run"
    run, layout = load_run(run_dir), DeployLayout(run_dir)
    identities = layout.enroll(6)
    prefix = "kill"
    ready = layout.edge_state / "ready"

    def start_server(url: str) -> subprocess.Popen[bytes]:
        ready.unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "tinylarge.cli.main", "serve", str(run_dir), "--broker", url,
             "--prefix", prefix, "--no-live-loop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.is_file():
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        return process

    rng = np.random.default_rng(0)
    n = 160
    device, sample = rng.integers(0, 6, n), rng.integers(0, 800, n)
    arrival = np.sort(rng.uniform(0.0, 12.0, n))  # room for a slow restart on a busy machine
    frames = run.tiny.quantize_input(deployment_state(run.scenario, 6).require_task().x_test)
    edge_key = edge_public_key(layout.edge_public)
    fleet = Fleet(run.tiny, run.policy("large"), identities, edge_key, frames,
                  topics=Topics(prefix), config=FleetConfig(deadline_s=0.5))  # fmt: skip
    with Broker(tmp_path / "broker", executable=mosquitto) as broker:
        first = start_server(broker.address.url)
        second: subprocess.Popen[bytes] | None = None
        restarted_s = float("inf")  # on the fleet's clock, when the new edge was ready

        async def chaos() -> None:
            nonlocal second, restarted_s
            async with aiomqtt.Client(broker.address.host, broker.address.port) as attacker:
                await asyncio.sleep(1.5)
                for k in range(50):  # garbage from nowhere, while the edge works
                    await attacker.publish(f"{prefix}/up/device-00000", b"\x01junk" * k, qos=0)
                    await attacker.publish(f"{prefix}/hello/intruder", b"hello", qos=0)
                first.send_signal(signal.SIGKILL)  # mid-run, no clean shutdown
                await asyncio.to_thread(first.wait)
                second = await asyncio.to_thread(start_server, broker.address.url)
                restarted_s = time.monotonic() - fleet.started_s

        async def main():  # type: ignore[no-untyped-def]
            side = asyncio.create_task(chaos())
            try:
                return await fleet.run(broker.address, device, sample, arrival)
            finally:
                await side

        try:
            records = asyncio.run(main())
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
    assert records.lost == 0
    assert set(np.unique(records.route)) <= {BY_EDGE, TIMED_OUT}
    # a second after the new process was up, every device has re-attached: all answered by it
    # (how long the restart takes depends on the machine's load: measured, not assumed)
    late = records.scheduled_s > restarted_s + 1.0
    assert late.sum() > 10 and (records.route[late] == BY_EDGE).all(), restarted_s
    assert (records.route == TIMED_OUT).sum() > 0  # the outage was real
    stats = json.loads((layout.edge_state / "server_stats.json").read_text())
    assert stats["requests"] == stats["replies"] and stats["handshakes"] == 6


@pytest.mark.parametrize("transport", ["mqtt-tls", "mqtt"])
def test_deploy_with_faults_loses_nothing_and_accepts_no_bad_input(
    deployed: Path, tmp_path: Path, transport: str
) -> None:
    """Every fault of `tinylarge deploy --faults`, injected into one run of real processes;
    over the locked-down broker (the default) and over an open one."""
    from tinylarge.deploy.adversary import ACL_DENIED_KINDS, FLOOD_KINDS, STOLEN_FLOOD_KINDS

    n = 12
    args = f"deploy --preset smoke --devices {n} --duration 30 --policy large --faults"
    result = CliRunner().invoke(
        app,
        [*args.split(), "--run", str(deployed / "run"), "--out", str(tmp_path / "f"),
         "--transport", transport],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    d: dict[str, Any] = json.loads((tmp_path / "f" / "metrics.json").read_text())["deploy"]
    faults = d["faults"]
    assert list(faults) == [
        "edge_kill", "broker_restart", "disconnect", "flood_replay", "corrupt_bundle"
    ]  # fmt: skip
    assert d["lost"] == 0 and "faults_errors" not in d and d["faults_skipped"] == {}
    for name, part in faults.items():
        assert set(part) >= {"answered", "fell_back", "lost", "recovery_s", "accepted_bad"}
        assert part["lost"] == 0 and part["accepted_bad"] == 0, name
        assert part["answered"] > 0, name  # the edge answers again within every window
        assert part["recovery_s"] is not None and 0 < part["recovery_s"] < 10, name
    # the edge was down: requests fell back to the devices, and it came back as a new process
    assert faults["edge_kill"]["fell_back"] > 0 and d["edge_starts"] == 2
    assert faults["broker_restart"]["recovery_s"] >= 1.0  # the broker was off for 1 s
    assert faults["disconnect"]["recovery_s"] >= 2.0  # the devices were off for 2 s
    sent = faults["flood_replay"]["sent"]
    assert sum(sent.values()) == 500 and d["unexpected_replies"] == 0
    assert d["model_versions"].keys() <= {"0", "1", "2", "3"}  # none of the bad versions
    assert d["transport"] == transport
    if transport == "mqtt":
        assert set(sent) == set(FLOOD_KINDS)
        assert d["rejected"]["handshake_UnknownDevice"] == sent["unenrolled_hello"]
        # every device refused every bad bundle, each for its reason
        assert d["refused_bundles"] == {"HashMismatch": n, "BadSignature": n, "Malformed": n}
        assert d["broker_refused"] == {"no_certificate": 0, "revoked": None, "acl_denied": 0}
    else:
        _check_the_locked_down_broker(d, n, STOLEN_FLOOD_KINDS, ACL_DENIED_KINDS)
    report = (tmp_path / "f" / "report.html").read_text()
    assert "Faults injected during the run" in report


def _check_the_locked_down_broker(
    d: dict[str, Any], n: int, kinds: tuple[str, ...], denied_kinds: tuple[str, ...]
) -> None:
    """With a stolen device certificate the adversary reached only that device's topics: the
    edge refused what it forged there, the broker refused the rest, and its connections
    without a certificate and with a revoked one."""
    flood, bundle = d["faults"]["flood_replay"], d["faults"]["corrupt_bundle"]
    sent = flood["sent"]
    assert set(sent) == set(kinds)
    assert flood["overheard"] == 0  # nothing of another device's traffic reached it
    # what reached the edge: forged hellos and garbage on the stolen device's own topics
    assert "handshake_UnknownDevice" not in d["rejected"]
    assert d["rejected"]["handshake_BadSignature"] == sent["forged_hello"]
    assert sum(d["rejected"].values()) >= sent["forged_hello"] + sent["garbage_own_up"]
    # what the ACL refused (PUBACK 0x87, one per publish), and the two connection attempts
    denied = sum(sent[k] for k in denied_kinds)
    assert flood["broker_refused"] == {"no_certificate": 1, "revoked": 1, "acl_denied": denied}
    bundles = len(bundle["bundles"])
    assert bundle["broker_refused"] == {"no_certificate": 0, "revoked": 0, "acl_denied": bundles}
    assert d["refused_bundles"] == {}  # no bad bundle reached a device
    refused = d["broker_refused"]
    assert refused["no_certificate"] >= 1 and refused["revoked"] >= 1
    assert refused["acl_denied"] >= denied + bundles
    assert d["broker_refused_sources"]["adversary"] == {
        "no_certificate": 1, "revoked": 1, "acl_denied": denied + bundles
    }  # fmt: skip
    assert d["broker_refused_sources"]["broker_log"]["no_certificate"] >= 1
