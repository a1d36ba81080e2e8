"""Sweeps on a real local Ray cluster (`ray.init(num_cpus=2)`): a 4-point smoke sweep equal to
in-process runs, a failing point that does not stop the others, resume after a killed sweep."""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinylarge.report import write
from tinylarge.sim.sweep import run_sweep
from tinylarge.sim.sweep_results import POINT_FILE
from tinylarge.sim.sweep_spec import SweepSpec

pytestmark = pytest.mark.slow

SWEEP = """
[sweep]
name = "t"
base = "smoke"
seeds = [0]
stages = "policies"
policies = ["cascade", "router"]

[axes]
"network.profile" = {profiles}
"policies.target_offload" = [0.3, 0.5]
"""


def _spec(tmp_path: Path, profiles: str) -> tuple[SweepSpec, Path]:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(profiles=profiles))
    return SweepSpec.load(path), path


def test_a_small_sweep_equals_the_same_runs_in_process(ray_local: None, tmp_path: Path) -> None:
    from tinylarge.sim import run
    from tinylarge.sim.pipeline import PIPELINE

    spec, _ = _spec(tmp_path, '["redcap", "nb_iot"]')
    finished: list[str] = []
    results = run_sweep(spec, tmp_path / "out", write=write,
                        on_done=lambda r, n, total: finished.append(r.point.key))  # fmt: skip
    assert [r.status for r in results] == ["ok"] * 4 and sorted(finished) == sorted(
        p.key for p in spec.points
    )
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert [row["point"] for row in rows] == [p.key for p in spec.points]
    assert {row["axis.network.profile"] for row in rows} == {"redcap", "nb_iot"}
    # the same scenario in this process gives the same numbers
    point = spec.points[3]
    names = [s.name for s in PIPELINE]
    here = run(spec.scenario(point), stages=PIPELINE[: names.index("policies") + 1])
    from tinylarge.report import collect

    mine = collect(here)["policies"]
    theirs = json.loads((tmp_path / "out" / "points" / point.key / "metrics.json").read_text())
    for policy in ("cascade", "router"):
        assert theirs["policies"][policy]["accuracy"] == mine[policy]["accuracy"]
        assert theirs["policies"][policy]["latency_s"] == mine[policy]["latency_s"]
    # one training group: trained once, the later points loaded the models from the cache
    assert len(spec.training_groups()) == 1


def test_a_failing_point_is_reported_and_the_others_go_on(ray_local: None, tmp_path: Path) -> None:
    spec, _ = _spec(tmp_path, '["redcap", "no_such_profile"]')  # valid TOML, fails at run time
    results = run_sweep(spec, tmp_path / "out", write=write)
    status = {r.point.values["network.profile"]: r.status for r in results}
    assert status == {"redcap": "ok", "no_such_profile": "error"}
    bad = next(r for r in results if r.status == "error")
    assert "no_such_profile" in (bad.error or "")
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert sum(row["status"] == "error" for row in rows) == 2 and all(
        row["error"] for row in rows if row["status"] == "error"
    )


def test_resume_after_a_killed_sweep_runs_only_what_was_not_finished(
    ray_local: None, tmp_path: Path
) -> None:
    spec, path = _spec(tmp_path, '["redcap", "nb_iot"]')
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "tinylarge.cli.main", "sweep", str(path), "--out", str(out),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not list(out.glob(f"points/*/{POINT_FILE}")):
            assert process.poll() is None and time.monotonic() < deadline, "no point finished"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the sweep and its Ray cluster, mid-way
        process.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"points/*/{POINT_FILE}")}
    assert 1 <= len(done_before) < 4
    results = run_sweep(spec, out, write=write, resume=True)
    assert [r.status for r in results] == ["ok"] * 4
    for key, mtime in done_before.items():  # not run again
        assert (out / "points" / key / POINT_FILE).stat().st_mtime_ns == mtime


@pytest.mark.system
def test_a_sweep_joins_a_running_cluster_with_address(tmp_path: Path) -> None:
    """`tinylarge sweep --address HOST:PORT` runs on a cluster started with `ray start`."""
    from tinylarge.deploy.broker import BrokerAddress, free_port, wait_listening

    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    # Ray's token authentication: the cluster and the sweep share one token
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip
    # --block: the head lives in this process group, stopped by killing the group (never
    # `ray stop`, which would stop every Ray on the machine, this session's too)
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        wait_listening(BrokerAddress("127.0.0.1", port), 60)  # the head's GCS port is open
        path = tmp_path / "one.toml"
        path.write_text(SWEEP.format(profiles='["redcap"]').replace("[0.3, 0.5]", "[0.4]"))
        done = subprocess.run(
            [sys.executable, "-m", "tinylarge.cli.main", "sweep", str(path), "--out",
             str(tmp_path / "out"), "--address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
        assert [row["status"] for row in rows] == ["ok"]
        wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # a stranger is refused
        refused = subprocess.run(
            [sys.executable, "-m", "tinylarge.cli.main", "sweep", str(path), "--out",
             str(tmp_path / "out2"), "--address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, env=wrong, timeout=600,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "cannot join the Ray cluster" in refused.stdout + refused.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)
