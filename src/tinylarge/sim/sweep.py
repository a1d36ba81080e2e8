"""Run a sweep on Ray: each point is one Ray task running the main job into its own directory.

``ray.init()`` starts a local cluster (all this machine's cores) unless ``address`` names one to
join (``"auto"``, or ``HOST:PORT``). Nothing of Ray is re-implemented: tasks, scheduling,
retries of lost workers and the object store are Ray's.

- **Trained once.** The model cache is content-addressed (`tinylarge.models.cache`). Points that
  share their training (`SweepSpec.training_groups`) run in two waves: the first point of each
  group, then the rest, which load the models the first one cached. On a cluster of several
  machines the cache must be a shared directory (NFS or similar): give it as ``cache_dir`` (or
  ``TINYLARGE_CACHE_DIR``) on every node. A shared directory, not Ray's object store: models are
  files that outlive the sweep and are reused by later runs and sweeps.
- **Nothing lost.** Each point writes its run directory under ``points/<key>/`` and, last, a
  ``point.json`` with its status; ``results.csv`` is rewritten as each point finishes. With
  ``resume`` a point whose ``point.json`` says ``ok`` is not run again. A point that fails is
  recorded with its error (``status = "error"``) and the others go on.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinylarge.ray_cluster import start_ray
from tinylarge.sim.sweep_results import POINT_FILE, PointResult, load_point, write_results
from tinylarge.sim.sweep_spec import SweepError, SweepSpec

if TYPE_CHECKING:  # the state imports torch: not at import time of the sweep's driver
    from tinylarge.sim.state import RunResult

#: Writes a finished run's directory (``metrics.json`` at least) and returns its report's
#: path: `tinylarge.report.write`, given by the caller so that the simulator never imports the
#: report layer.
RunWriter = Callable[["RunResult", Path], Path]


def run_point(
    table: dict[str, Any], until: str | None, point_dir: str, cache_dir: str, write: RunWriter
) -> dict[str, Any]:
    """Run the main job for one scenario table into ``point_dir``; the ``point.json`` record.

    Runs inside a Ray worker (one CPU: torch is told to use one thread) or in-process.

    Parameters
    ----------
    table : dict
        The point's scenario as a TOML table (`SweepSpec.table`).
    until : str, optional
        Run the main job up to this stage (None: all of it).
    point_dir : str
        The point's run directory.
    cache_dir : str
        The model cache shared by every point.
    write : RunWriter
        Writes the finished run into ``point_dir`` (`tinylarge.report.write`).
    """
    import torch

    from tinylarge.config import scenario_from_table
    from tinylarge.models.cache import ModelCache
    from tinylarge.sim.pipeline import PIPELINE, run

    torch.set_num_threads(1)
    started = time.perf_counter()
    out = Path(point_dir)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any]
    try:
        scenario = scenario_from_table(table, out.name)
        names = [s.name for s in PIPELINE]
        stages = PIPELINE if until is None else PIPELINE[: names.index(until) + 1]
        result = run(scenario, cache=ModelCache(cache_dir), stages=stages)
        write(result, out)
        record = {"status": "ok", "error": None}
    except Exception as error:  # recorded: the sweep goes on
        record = {"status": "error", "error": f"{type(error).__name__}: {error}",
                  "traceback": traceback.format_exc()}  # fmt: skip
    record["wall_s"] = time.perf_counter() - started
    tmp = out / f".{POINT_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out / POINT_FILE)  # last: a point with point.json is finished
    return record


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    write: RunWriter,
    address: str | None = None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    num_cpus: int | None = None,
    on_done: Callable[[PointResult, int, int], None] | None = None,
) -> list[PointResult]:
    """Run every point of ``spec`` on Ray into ``out_dir``; results in point order.

    ``write`` writes each finished point's run directory (`tinylarge.report.write`: the
    simulator does not import the report layer). ``on_done(result, finished, total)`` is called
    as each point finishes (a progress bar). ``num_cpus`` caps a local cluster (default: all
    cores); it is ignored with ``address``.
    """
    import ray

    from tinylarge.models.cache import default_cache_dir

    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    cache = str(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    results: dict[str, PointResult] = {}
    if resume:
        for point in spec.points:
            done = load_point(spec, point, out)
            if done is not None and done.status == "ok":
                results[point.key] = done
    total = len(spec.points)
    todo = [p for p in spec.points if p.key not in results]
    groups = spec.training_groups()
    first_keys = {g[0].key for g in groups.values()}
    waves = [[p for p in todo if p.key in first_keys], [p for p in todo if p.key not in first_keys]]
    if todo:
        _init_ray(address, num_cpus, cache)
        remote = ray.remote(num_cpus=1, max_retries=1)(run_point)
        for wave in waves:
            pending = {
                remote.remote(
                    spec.table(p), spec.stages_until, str(out / "points" / p.key), cache, write
                ): p
                for p in wave
            }
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                point = pending.pop(ready[0])
                try:
                    ray.get(ready[0])
                except Exception as error:  # the worker died: Ray retried once already
                    _record_crash(out / "points" / point.key, error)
                finished = load_point(spec, point, out)
                assert finished is not None  # run_point or _record_crash wrote point.json
                results[point.key] = finished
                write_results(spec, [results[p.key] for p in spec.points if p.key in results], out)
                if on_done is not None:
                    on_done(finished, len(results), total)
    ordered = [results[p.key] for p in spec.points]
    write_results(spec, ordered, out)
    return ordered


def _init_ray(address: str | None, num_cpus: int | None, cache: str) -> None:
    try:
        start_ray(address, num_cpus=num_cpus or os.cpu_count(),
                  env_vars={"TINYLARGE_CACHE_DIR": cache})  # fmt: skip
    except ConnectionError as error:
        raise SweepError(str(error)) from None


def _record_crash(point_dir: Path, error: BaseException) -> None:
    point_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": "error", "error": f"worker lost: {type(error).__name__}: {error}",
              "wall_s": 0.0}  # fmt: skip
    (point_dir / POINT_FILE).write_text(json.dumps(record, indent=1))
