from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tinylarge.config import (
    Scenario,
    ScenarioError,
    load_preset,
    load_scenario,
    preset_descriptions,
    preset_names,
    scenario_from_table,
    scenario_to_toml,
    with_seed,
)


def test_presets_include_default_and_smoke_with_descriptions() -> None:
    names = preset_names()
    assert {"default", "smoke"} <= set(names)
    descriptions = preset_descriptions()
    assert all(descriptions[n].strip() for n in names)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_round_trips_through_toml(name: str, tmp_path: Path) -> None:
    scenario = load_preset(name)
    path = tmp_path / "s.toml"
    path.write_text(scenario_to_toml(scenario))
    assert load_scenario(path) == scenario
    assert scenario.name == name


def test_unknown_key_names_key_and_allowed_keys() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_table({"task": {"radio": {"snr_step": 1.0}}}, "my.toml")
    message = str(info.value)
    assert "my.toml" in message
    assert "task.radio.snr_step: unknown key" in message
    assert "snr_db_step" in message  # the allowed keys are listed


def test_unknown_top_level_section_is_an_error() -> None:
    with pytest.raises(ScenarioError, match=r"netwrk: unknown key; allowed keys here: name, descr"):
        scenario_from_table({"netwrk": {}}, "x")


def test_out_of_range_value_names_key_value_and_bounds() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_table({"task": {"radio": {"snr_db_step": -2.0}}, "seed": -1}, "x")
    message = str(info.value)
    assert "task.radio.snr_db_step = -2.0" in message
    assert "allowed: > 0.0" in message
    assert "seed = -1" in message  # every problem is reported, not just the first


def test_bad_choice_lists_choices() -> None:
    choices = r"'radio', 'digits', 'npz' or 'text'"
    with pytest.raises(ScenarioError, match=rf"task.name = 'mnist': .*{choices}"):
        scenario_from_table({"task": {"name": "mnist"}}, "x")


def test_cross_field_rule_is_reported_with_its_section() -> None:
    with pytest.raises(ScenarioError, match=r"task.radio.*snr_db_min \(30.0\) must not exceed"):
        scenario_from_table({"task": {"radio": {"snr_db_min": 30.0}}}, "x")


def test_npz_task_needs_path() -> None:
    with pytest.raises(ScenarioError, match=r"needs a \[task.npz\] section"):
        scenario_from_table({"task": {"name": "npz"}}, "x")


def test_base_preset_is_merged_and_overridden(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('base = "smoke"\nname = "mine"\n[task.radio]\nn_test = 100\n')
    scenario = load_scenario(path)
    smoke = load_preset("smoke")
    assert scenario.name == "mine"
    assert scenario.task.radio.n_test == 100
    assert scenario.task.radio.n_train == smoke.task.radio.n_train  # kept from the base
    assert scenario.training == smoke.training


def test_unknown_base_preset_lists_available(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('base = "nope"\n')
    with pytest.raises(ScenarioError, match=r"unknown preset 'nope'; available presets: .*default"):
        load_scenario(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3\n")
    with pytest.raises(ScenarioError, match="is not valid TOML"):
        load_scenario(bad)


def test_with_seed_validates_and_keeps_the_rest() -> None:
    smoke = load_preset("smoke")
    seeded = with_seed(smoke, 7)
    assert seeded.seed == 7
    assert seeded.model_copy(update={"seed": smoke.seed}) == smoke
    with pytest.raises(ScenarioError, match="seed"):
        with_seed(smoke, -1)


def test_defaults_alone_are_a_valid_scenario() -> None:
    scenario = Scenario()
    assert scenario.task.name == "radio"
    assert len(scenario.task.radio.classes) == 8
    assert tomllib.loads(scenario_to_toml(scenario))["seed"] == 0


def test_scenario_is_immutable() -> None:
    scenario = Scenario()
    with pytest.raises(Exception, match="frozen"):
        scenario.seed = 3  # type: ignore[misc]
