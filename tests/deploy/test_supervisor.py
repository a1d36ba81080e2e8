"""The edge process's supervisor tells an end it asked for from one it did not (a stand-in
child process that only writes the ready file, so no broker or model is needed)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tinylarge.deploy.files import ANSWERED_FILE, READY_FILE, STATS_FILE
from tinylarge.deploy.supervisor import EdgeExit, EdgeProcess


def _stand_in(state: Path, log: Path, code: str = "time.sleep(60)") -> EdgeProcess:
    script = (
        f"import pathlib, time; pathlib.Path({str(state / READY_FILE)!r}).write_text('b'); {code}"
    )
    return EdgeProcess([sys.executable, "-c", script], state, log)


def _wait_for_exit(edge: EdgeProcess, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not edge.exits and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_sigkill_nobody_asked_for_is_recorded_with_its_time(tmp_path: Path) -> None:
    state = tmp_path / "edge-state"
    state.mkdir()
    (state / STATS_FILE).write_text("{}")  # an earlier edge's counters: never read again
    (state / ANSWERED_FILE).write_bytes(b"")
    edge = _stand_in(state, tmp_path / "serve.log")
    edge.start()
    assert not (state / STATS_FILE).exists() and not (state / ANSWERED_FILE).exists()
    assert edge.pid is not None and edge.died is None
    killed = time.time()
    os.kill(edge.pid, signal.SIGKILL)
    _wait_for_exit(edge)
    died = edge.died
    assert died is not None and died.signal == "SIGKILL" and died.exit_code is None
    assert 0 <= died.ended_unix - killed < 2.0
    edge.stop()  # nothing left to stop; the record stays
    assert edge.died == died
    metrics = died.metrics(schedule_start_unix=killed + 5.0)
    assert metrics["signal"] == "SIGKILL" and -5.0 <= metrics["at_s"] < -3.0
    assert metrics["uptime_s"] > 0 and died.metrics(float("nan"))["at_s"] is None


def test_ends_asked_for_are_not_faults(tmp_path: Path) -> None:
    edge = _stand_in(tmp_path / "state", tmp_path / "serve.log")
    edge.start()
    edge.kill()  # a scripted fault (it is restarted), then a clean stop at the end
    edge.start()
    edge.stop()
    assert edge.starts == 2 and edge.exits == [] and edge.died is None


def test_an_exit_code_is_recorded_as_such(tmp_path: Path) -> None:
    edge = _stand_in(tmp_path / "state", tmp_path / "serve.log", "time.sleep(0.2); exit(3)")
    edge.start()
    _wait_for_exit(edge)
    assert edge.died == EdgeExit(3, edge.exits[0].started_unix, edge.exits[0].ended_unix)
    assert edge.exits[0].metrics(edge.exits[0].started_unix)["exit_code"] == 3


def test_an_edge_that_never_gets_ready_is_an_error_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    edge = EdgeProcess([sys.executable, "-c", "print('no broker'); exit(2)"], tmp_path, log)
    with pytest.raises(RuntimeError, match=r"exited with code 2; its log:\nno broker"):
        edge.start()
