"""Load scenarios from TOML files and presets, apply overrides, and write them back as TOML."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from tinylarge.config.errors import ScenarioError, format_validation_error
from tinylarge.config.scenario import Scenario

_PRESET_PACKAGE = "tinylarge.config.presets"
#: Top-level key of a user TOML file that starts it from a preset (then overrides it).
BASE_KEY = "base"


def preset_names() -> list[str]:
    """Names of the built-in presets, sorted."""
    files = resources.files(_PRESET_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def _preset_table(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise ScenarioError(f"unknown preset {name!r}; available presets: {', '.join(names)}")
    text = resources.files(_PRESET_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def preset_descriptions() -> dict[str, str]:
    """Map every preset name to its one-line description."""
    return {name: str(_preset_table(name).get("description", "")) for name in preset_names()}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (tables merge, other values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def scenario_from_table(table: dict[str, Any], source: str) -> Scenario:
    """Validate a parsed TOML table as a `Scenario`, resolving an optional ``base`` preset."""
    table = dict(table)
    base = table.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str):
            raise ScenarioError(f"{source}: {BASE_KEY} = {base!r} must be a preset name (string)")
        table = _merge(_preset_table(base), table)
    try:
        return Scenario.model_validate(table)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, Scenario, source)) from None


def load_preset(name: str) -> Scenario:
    """Return the built-in preset ``name`` as a validated `Scenario`."""
    return scenario_from_table(_preset_table(name), f"preset {name!r}")


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario TOML file; a top-level ``base = "<preset>"`` starts from that preset."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"cannot read scenario file {path}: {error}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path} is not valid TOML: {error}") from None
    return scenario_from_table(table, str(path))


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    """Return ``scenario`` with its seed replaced (validated like any other value)."""
    return scenario_from_table({**scenario_to_table(scenario), "seed": seed}, "--seed")


def scenario_to_table(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain TOML-compatible data (absent optional sections omitted)."""
    return scenario.model_dump(mode="json", exclude_none=True)


def scenario_to_toml(scenario: Scenario) -> str:
    """Render the fully resolved scenario as TOML; `load_scenario` reads it back equal."""
    header = "# tinylarge scenario (fully resolved; load with `tinylarge run --config FILE`)\n"
    return header + tomli_w.dumps(scenario_to_table(scenario))
