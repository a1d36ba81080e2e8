"""Sweep files: points, validation before any work, training groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinylarge.sim.sweep_spec import SweepError, SweepSpec


def _spec(text: str, tmp_path: Path) -> SweepSpec:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return SweepSpec.load(path)


def test_points_are_the_product_of_the_axes_times_the_seeds(tmp_path: Path) -> None:
    spec = _spec(
        """
        [sweep]
        base = "smoke"
        seeds = [3, 4]
        [axes]
        "network.profile" = ["redcap", "nb_iot"]
        "devices.count" = [10, 20, 30]
        """,
        tmp_path,
    )
    assert len(spec.points) == 2 * 3 * 2
    assert [p.key for p in spec.points[:3]] == ["p0000-s3", "p0000-s4", "p0001-s3"]
    scenario = spec.scenario(spec.points[3])  # the second combination, second seed
    assert (scenario.network.profile, scenario.devices.count, scenario.seed) == ("redcap", 20, 4)


def test_points_sharing_their_training_are_grouped(tmp_path: Path) -> None:
    spec = _spec(
        """
        [sweep]
        base = "smoke"
        seeds = [0, 1]
        [axes]
        "network.profile" = ["redcap", "nb_iot"]
        "policies.target_offload" = [0.2, 0.4]
        """,
        tmp_path,
    )
    groups = spec.training_groups()
    assert len(groups) == 2  # only the seed changes what is trained
    assert all(len(g) == 4 and len({p.seed for p in g}) == 1 for g in groups.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[axes]\n"a" = [1]', "a [sweep] table is required"),
        ('[sweep]\nbase = "smoke"\nmodel = 1', "unknown [sweep] key(s) ['model']"),
        ('[sweep]\nbase = "nope"', "unknown preset 'nope'"),
        ('[sweep]\nbase = "smoke"\n[axes]\n"network.profiel" = ["redcap"]', "profiel"),
        ('[sweep]\nbase = "smoke"\n[axes]\n"devices.count" = [0]', "devices.count"),
        ('[sweep]\nbase = "smoke"\nstages = "train"', "is not a stage"),
        ('[sweep]\nbase = "smoke"\nseeds = []', "non-empty list of integers"),
        ('[sweep]\nbase = "smoke"\n[axes]\n"devices.count" = []', "non-empty lists"),
    ],
)
def test_a_bad_sweep_fails_before_any_work_saying_why(
    text: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(SweepError, match=None) as error:
        _spec(text, tmp_path)
    assert message in str(error.value)


def test_the_example_sweep_is_valid() -> None:
    spec = SweepSpec.example()
    assert spec.policies == ("cascade", "router", "early_exit") and len(spec.points) == 8
