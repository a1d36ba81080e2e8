"""Reliability of the running system: what happens to every request when things break.

Run by hand::

    python benchmarks/bench_faults.py [--preset smoke] [--devices 100] [--rate 1]
        [--duration 30] [--policy large] [--repeats 3] [--out DIR]

Each repeat runs `tinylarge.deploy.run` with every fault (what ``tinylarge deploy --faults``
does: a real Mosquitto, the edge server and the fleet as separate processes on this machine),
which injects one after the other: the edge
server SIGKILLed and restarted, the broker stopped and restarted, 10 % of the devices
disconnecting for 2 s, a 1 s flood of 500 forged, mutated and replayed messages a second, and
corrupted model bundles (`tinylarge.deploy.faults`). It prints, per fault, the requests of its
window answered by the edge, fallen back to the device's own answer and lost, the recovery time
and the bad inputs acted upon: medians over the repeats (each repeat's figures in the JSON).
``--policy large`` (the default) offloads every request, so every fault hits every request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ("requests", "answered", "fell_back", "lost", "recovery_s", "accepted_bad")


def fault_run(args: argparse.Namespace, run_dir: Path | None, out: Path) -> dict[str, Any]:
    """One `tinylarge.deploy.run` with every fault (``tinylarge deploy --faults``); its
    ``deploy`` metrics."""
    from tinylarge.config import load_preset
    from tinylarge.config.deploy_config import with_overrides
    from tinylarge.deploy import DeployError, FaultPlan
    from tinylarge.deploy import run as deploy_run

    scenario = load_preset(args.preset)
    settings = with_overrides(scenario.deploy, "bench_faults.py", {"processes": args.processes})
    try:
        result = deploy_run(
            scenario.model_copy(update={"deploy": settings}), run_dir=out, devices=args.devices,
            rate_per_device_hz=args.rate, duration_s=args.duration, policy=args.policy,
            models=run_dir, faults=FaultPlan.spread(args.duration),
        )  # fmt: skip
    except DeployError as error:
        raise SystemExit(f"the fault run failed:\n{error}") from None
    return result.deploy


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    m = float(np.median(known))
    return f"{m:.2f}" if m != int(m) else f"{int(m)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="requests/s per device")
    parser.add_argument("--duration", type=float, default=30.0, help="s of requests per run")
    parser.add_argument("--policy", default="large")
    parser.add_argument("--processes", type=int, default=1, help="fleet processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.devices} devices x {args.rate:g} req/s, "
          f"{args.duration:g} s per run, policy {args.policy}, {args.repeats} repeats")  # fmt: skip
    runs: list[dict[str, Any]] = []
    run_dir: Path | None = None
    for k in range(args.repeats):
        runs.append(fault_run(args, run_dir, out / f"repeat{k}"))
        run_dir = run_dir or out / "repeat0" / "run"  # models made once, reused
        d = runs[-1]
        errors = d.get("faults_errors", {})
        print(f"repeat {k}: {d['requests']:,} requests, {d['lost']} lost, "
              f"edge restarts {d['edge_starts'] - 1}, errors {errors}")  # fmt: skip
    names = list(runs[0]["faults"])
    header = f"{'fault':16s}" + "".join(f"{f:>14s}" for f in FIELDS)
    print("\nmedian over repeats, per fault window")
    print(header)
    for name in names:
        cells = [_median([r["faults"][name][f] for r in runs if name in r["faults"]])
                 for f in FIELDS]  # fmt: skip
        print(f"{name:16s}" + "".join(f"{c:>14s}" for c in cells))
    lost = [r["lost"] for r in runs]
    print(f"\nlost over whole runs: {lost}; unexpected replies: "
          f"{[r['unexpected_replies'] for r in runs]}; bundles refused (last run): "
          f"{runs[-1]['refused_bundles']}")  # fmt: skip
    summary = out / "bench_faults.json"
    summary.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                   "runs": runs}, indent=2))  # fmt: skip
    print(f"every run's figures: {summary}")


if __name__ == "__main__":
    main()
