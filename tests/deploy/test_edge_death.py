"""`tinylarge.deploy.run` survives an edge that dies for good: the real ``tinylarge serve``
child SIGKILLed (as by the kernel's OOM killer) and never restarted, while the devices are
handshaking or after. The run ends normally with ``metrics.json`` written from what the devices
recorded, nothing lost, the edge's end recorded (``deploy.edge_exit``), and a report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from tinylarge.config import load_preset
from tinylarge.deploy import DeployResult, run
from tinylarge.deploy.artefacts import make_models
from tinylarge.deploy.broker import Broker
from tinylarge.deploy.progress import SilentProgress
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import TIMED_OUT
from tinylarge.report.deploy_section import write_deploy_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke preset's models and fitted policies (trained ones from the cache)."""
    return make_models(load_preset("smoke"), tmp_path_factory.mktemp("models")).run_dir


class KillAtFirstHello(SilentProgress):
    """SIGKILL the edge as soon as the first device's hello reaches the broker: the fleet is
    handshaking, most devices have no session yet."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.killed_unix = float("nan")
        self._listening = threading.Event()

    def edge_ready(self, pid: int, topics: Topics) -> None:
        threading.Thread(target=asyncio.run, args=(self._watch(pid, topics),), daemon=True).start()
        assert self._listening.wait(10), "the observer did not subscribe"

    async def _watch(self, pid: int, topics: Topics) -> None:
        address = self.broker.address
        async with aiomqtt.Client(address.host, address.port) as client:
            await client.subscribe(f"{topics.prefix}/hello/+", qos=0)
            self._listening.set()
            async for _ in client.messages:
                os.kill(pid, signal.SIGKILL)
                self.killed_unix = time.time()
                return


class KillAfterStart(SilentProgress):
    """SIGKILL the edge ``after_s`` into the fleet's schedule (every device attached)."""

    def __init__(self, after_s: float) -> None:
        self.after_s, self.pid = after_s, 0

    def edge_ready(self, pid: int, topics: Topics) -> None:
        self.pid = pid

    def schedule_started(self, started_unix: float) -> None:
        delay = max(0.0, started_unix + self.after_s - time.time())
        threading.Timer(delay, os.kill, (self.pid, signal.SIGKILL)).start()


def _check_written(result: DeployResult) -> None:
    """metrics.json is the result's metrics; a report renders from them."""
    assert json.loads(result.metrics_path.read_text()) == result.metrics
    report = write_deploy_report(result.out_dir, result.metrics, result.records, "edge death")
    assert "ended on its own (SIGKILL)" in report.read_text()


def test_an_edge_killed_while_the_devices_handshake(
    models: Path, broker: Broker, tmp_path: Path
) -> None:
    progress = KillAtFirstHello(broker)
    result = run(load_preset("smoke"), run_dir=tmp_path, devices=30, duration_s=3.0,
                 policy="large", models=models, broker=broker.address.url,
                 progress=progress)  # fmt: skip
    d = result.deploy
    died = d["edge_exit"]
    assert died["signal"] == "SIGKILL" and died["exit_code"] is None
    assert died["at_s"] < 0 < died["uptime_s"]  # before the schedule: during the handshakes
    assert result.edge_exit is not None
    assert abs(result.edge_exit.ended_unix - progress.killed_unix) < 1.0  # the kill we made
    # devices left without a session answered themselves, and kept trying
    assert d["devices_unattached_at_start"] >= 1 and d["hello_retries"] >= 1
    assert d["requests"] > 30 and d["lost"] == 0 and d["answered"] == d["requests"]
    assert d["answered_by_edge"] == 0 and d["timed_out"] == d["requests"]  # "large": offloads
    assert d["edge"]["requests_per_s"] is None  # no counters from a killed edge
    _check_written(result)


def test_an_edge_killed_after_the_handshakes(models: Path, broker: Broker, tmp_path: Path) -> None:
    result = run(load_preset("smoke"), run_dir=tmp_path, devices=8, duration_s=5.0,
                 policy="large", models=models, broker=broker.address.url,
                 progress=KillAfterStart(1.5))  # fmt: skip
    d, records = result.deploy, result.records
    died = d["edge_exit"]
    assert died["signal"] == "SIGKILL" and d["devices_unattached_at_start"] == 0
    assert 1.5 <= died["at_s"] < 5.0, died  # measured from the schedule's start
    assert d["lost"] == 0 and d["answered"] == d["requests"] > 20
    # answered by the edge while it lived; after its death only by the devices themselves
    assert d["answered_by_edge"] > 0 and d["timed_out"] > 0
    after = records.scheduled_s > died["at_s"]
    assert after.sum() > 5 and (records.route[after] == TIMED_OUT).all()
    # they fell back at the deadline (their sessions were there: they waited for a reply)
    assert np.all(records.answered_s[after] - records.sent_s[after] >= 0.49)
    _check_written(result)
