"""Scenario configuration: the pydantic schema, TOML loading and the built-in presets.

This package is a leaf: it imports no other tinylarge layer, so every layer may use it.
"""

from tinylarge.config.errors import ScenarioError
from tinylarge.config.loading import (
    load_preset,
    load_scenario,
    preset_descriptions,
    preset_names,
    scenario_from_table,
    scenario_to_toml,
    with_seed,
)
from tinylarge.config.scenario import (
    RADIO_CLASS_NAMES,
    DevicesConfig,
    ModelSpec,
    RadioTaskConfig,
    Scenario,
    TaskConfig,
    TrainingSpec,
)

__all__ = [
    "RADIO_CLASS_NAMES",
    "DevicesConfig",
    "ModelSpec",
    "RadioTaskConfig",
    "Scenario",
    "ScenarioError",
    "TaskConfig",
    "TrainingSpec",
    "load_preset",
    "load_scenario",
    "preset_descriptions",
    "preset_names",
    "scenario_from_table",
    "scenario_to_toml",
    "with_seed",
]
