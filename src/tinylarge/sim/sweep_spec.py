"""A scenario sweep: a base scenario, axes of scenario keys, seeds; its points.

A sweep file (TOML)::

    [sweep]
    name = "radio-x-devices"
    base = "smoke"                # a preset; or base_config = "my.toml" (relative to this file)
    seeds = [0, 1]
    stages = "policies"           # run the main job up to this stage (default: all of it)
    policies = ["cascade", "router", "early_exit"]   # compared in the sweep report

    [axes]                        # any scenario key, dotted; a list of values each
    "network.profile" = ["redcap", "fr2_mmwave"]
    "devices.count" = [10, 40]

The points are the Cartesian product of the axes, in file order, each run once per seed. Every
point's scenario is validated before anything runs, so a misspelt key or a bad value fails at
once with the scenario's own error message and the point that carries it.
"""

from __future__ import annotations

import copy
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tinylarge.config import Scenario, scenario_from_table
from tinylarge.config.errors import ScenarioError
from tinylarge.config.loading import scenario_to_table

_SWEEP_KEYS = {"name", "base", "base_config", "seeds", "stages", "policies"}
#: Scenario sections that do not change what the models learn: points that differ only in
#: them share their trained models (see `SweepSpec.training_groups`).
AFTER_TRAINING = ("network", "policies", "colearning", "security")


class SweepError(ValueError):
    """A sweep file that cannot be run, with what is wrong and what is allowed."""


@dataclass(frozen=True)
class SweepPoint:
    """One scenario of the sweep: the axis values and the seed."""

    index: int
    values: dict[str, Any]
    seed: int

    @property
    def key(self) -> str:
        """Directory name of the point: ``p0003-s1``."""
        return f"p{self.index:04d}-s{self.seed}"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (see the module doc)."""

    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    seeds: list[int]
    stages_until: str | None = None
    policies: tuple[str, ...] = ()
    points: list[SweepPoint] = field(default_factory=list)

    @staticmethod
    def from_table(table: dict[str, Any], source: str, base_dir: Path) -> SweepSpec:
        """Validate a parsed sweep file; ``base_dir`` resolves ``base_config``."""
        sweep = table.get("sweep")
        if not isinstance(sweep, dict):
            raise SweepError(f"{source}: a [sweep] table is required (keys: {_allowed()})")
        unknown = set(sweep) - _SWEEP_KEYS
        if unknown:
            raise SweepError(f"{source}: unknown [sweep] key(s) {sorted(unknown)}; allowed: "
                             f"{_allowed()}")  # fmt: skip
        base = _base_table(sweep, source, base_dir)
        axes = table.get("axes", {})
        if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
            raise SweepError(f"{source}: [axes] maps dotted scenario keys to non-empty lists")
        seeds = sweep.get("seeds", [int(base.get("seed", 0))])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise SweepError(f"{source}: seeds must be a non-empty list of integers, got {seeds!r}")
        stages = sweep.get("stages")
        if stages is not None:
            from tinylarge.sim.pipeline import PIPELINE

            names = [s.name for s in PIPELINE]
            if stages not in names:
                raise SweepError(f"{source}: stages = {stages!r} is not a stage; the main "
                                 f"job's stages: {', '.join(names)}")  # fmt: skip
        spec = SweepSpec(
            name=str(sweep.get("name", Path(source).stem)),
            base=base,
            axes={str(k): list(v) for k, v in axes.items()},
            seeds=list(seeds),
            stages_until=stages,
            policies=tuple(str(p) for p in sweep.get("policies", ())),
        )
        points = [
            SweepPoint(i, dict(zip(spec.axes, combo, strict=True)), seed)
            for i, combo in enumerate(itertools.product(*spec.axes.values()))
            for seed in spec.seeds
        ]
        object.__setattr__(spec, "points", points)
        for point in points:  # fail before any work
            spec.scenario(point)
        return spec

    @staticmethod
    def load(path: str | Path) -> SweepSpec:
        """Read and validate a sweep file."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise SweepError(f"sweep file not found: {path}") from None
        except tomllib.TOMLDecodeError as error:
            raise SweepError(f"{path} is not valid TOML: {error}") from None
        return SweepSpec.from_table(table, str(path), path.parent)

    @staticmethod
    def example() -> SweepSpec:
        """The built-in example: radio profiles x device counts x {cascade, router,
        early_exit} on the smoke preset (a few minutes on 2 cores)."""
        text = resources.files("tinylarge.config").joinpath("sweeps", "example.toml")
        table = tomllib.loads(text.read_text("utf-8"))
        return SweepSpec.from_table(table, "built-in example sweep", Path("."))

    def table(self, point: SweepPoint) -> dict[str, Any]:
        """The scenario table of ``point``: the base with its axis values and seed."""
        table = copy.deepcopy(self.base)
        for key, value in point.values.items():
            node = table
            *parents, leaf = key.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise SweepError(f"axis {key!r}: {part!r} is a value, not a table")
                node = child
            node[leaf] = value
        table["seed"] = point.seed
        table["name"] = f"{self.name}-{point.key}"
        return table

    def scenario(self, point: SweepPoint) -> Scenario:
        """The validated scenario of ``point``."""
        try:
            return scenario_from_table(self.table(point), f"sweep point {point.key} "
                                       f"({_describe(point)})")  # fmt: skip
        except ScenarioError as error:
            raise SweepError(str(error)) from None

    def training_groups(self) -> dict[str, list[SweepPoint]]:
        """Points that train the same models (they differ only in sections after training),
        by a key; the first of each group trains, the others then load from the cache."""
        groups: dict[str, list[SweepPoint]] = {}
        for point in self.points:
            table = scenario_to_table(self.scenario(point))
            for section in (*AFTER_TRAINING, "name"):
                table.pop(section, None)
            groups.setdefault(json.dumps(table, sort_keys=True), []).append(point)
        return groups


def _allowed() -> str:
    return ", ".join(sorted(_SWEEP_KEYS))


def _describe(point: SweepPoint) -> str:
    values = ", ".join(f"{k} = {v!r}" for k, v in point.values.items())
    return f"{values}, seed {point.seed}" if values else f"seed {point.seed}"


def _base_table(sweep: dict[str, Any], source: str, base_dir: Path) -> dict[str, Any]:
    if ("base" in sweep) == ("base_config" in sweep):
        raise SweepError(f"{source}: give exactly one of base = \"<preset>\" or "
                         "base_config = \"<scenario file>\"")  # fmt: skip
    from tinylarge.config.loading import load_preset, load_scenario

    try:
        if "base" in sweep:
            scenario = load_preset(str(sweep["base"]))
        else:
            scenario = load_scenario(base_dir / str(sweep["base_config"]))
    except ScenarioError as error:
        raise SweepError(f"{source}: {error}") from None
    return scenario_to_table(scenario)
