"""The large model's stage and the foundation stage: which path a model takes, the labelled
pools, and the goals computed from the scores."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.config import load_preset
from tinylarge.config.scenario import ModelSpec, Scenario
from tinylarge.sim.foundation_results import FoundationResult, OodSet, Score
from tinylarge.sim.foundation_stages import OOD_SETS, few_shot_pool, few_shot_training
from tinylarge.sim.large_stages import check_large_config, labelled_pool, large_kind
from tinylarge.sim.stages import task_stage
from tinylarge.sim.state import RunState


def _state() -> RunState:
    state = RunState(scenario=load_preset("smoke"))
    task_stage(state, None)  # type: ignore[arg-type]  # the task stage uses no context
    return state


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (ModelSpec(name="rf_transformer"), "pretrained"),
        (ModelSpec(name="rf_transformer", options={"checkpoint": "none"}), "scratch"),
        (ModelSpec(name="large_resnet"), "scratch"),
        (ModelSpec(name="hf_local", options={"path": "x"}), "scratch"),
        (ModelSpec(name="onnx", options={"path": "x"}), "inference_only"),
    ],
)
def test_each_large_model_takes_its_path(spec: ModelSpec, kind: str) -> None:
    assert large_kind(spec) == kind


def _with(scenario: Scenario, name: str, method: str) -> Scenario:
    return scenario.model_copy(
        update={
            "models": scenario.models.model_copy(update={"large": ModelSpec(name=name)}),
            "training": scenario.training.model_copy(
                update={
                    "large": scenario.training.large.model_copy(
                        update={
                            "adaptation": scenario.training.large.adaptation.model_copy(
                                update={"method": method}
                            )
                        }
                    )
                }
            ),
        }
    )


def test_adaptation_methods_that_do_not_fit_the_model_fail_before_any_work() -> None:
    smoke = load_preset("smoke")
    with pytest.raises(ValueError, match="needs a pretrained large model"):
        check_large_config(_with(smoke, "large_resnet", "lora"))
    with pytest.raises(ValueError, match=r"cannot be trained; set training\.large\.adaptation"):
        check_large_config(_with(smoke, "onnx", "full"))
    check_large_config(_with(smoke, "rf_transformer", "probe"))
    wrong = smoke.model_copy(
        update={
            "foundation": smoke.foundation.model_copy(
                update={"baseline": ModelSpec(name="large_resnet", options={"depth": 3})}
            )
        }
    )
    with pytest.raises(ValueError, match=r"foundation\.baseline: model 'large_resnet' has no"):
        check_large_config(wrong)


def test_the_labelled_pool_is_seeded_sorted_and_capped() -> None:
    state = _state()
    pool = labelled_pool(state, 500)
    assert len(pool) == 500 and np.all(np.diff(pool) > 0)
    np.testing.assert_array_equal(pool, labelled_pool(_state(), 500))
    assert len(labelled_pool(state, None)) == state.require_task().n_train


def test_few_shot_pools_are_balanced_and_nested() -> None:
    state = _state()
    y = state.require_task().y_train
    one, ten = few_shot_pool(state, 1), few_shot_pool(state, 10)
    assert np.bincount(y[one]).tolist() == [1] * 8
    assert np.bincount(y[ten]).tolist() == [10] * 8
    assert set(one) <= set(ten)
    with pytest.raises(ValueError, match="exceeds the training frames of a class"):
        few_shot_pool(state, 10_000)


def test_few_shot_training_takes_the_configured_number_of_steps() -> None:
    state = _state()
    config = state.scenario.foundation.few_shot
    for n in (8, 80, 800):
        spec = few_shot_training(state, n)
        steps = spec.epochs * -(-n // spec.batch_size)
        assert config.steps <= steps < config.steps + -(-n // spec.batch_size)
        assert spec.val_fraction == 0.0


def _score(accuracy: float) -> Score:
    return Score(accuracy, None, 0, 0, 0.0)


def test_goals_follow_the_scores() -> None:
    result = FoundationResult(
        label_efficiency={
            "foundation_probe": {"10": _score(0.30), "all": _score(0.50)},
            "foundation_full": {"10": _score(0.35), "all": _score(0.62)},
            "large_resnet": {"100": _score(0.34), "all": _score(0.60)},
        },
        in_distribution={"foundation": 0.62, "baseline": 0.60},
        out_of_distribution={
            "a": OodSet("", foundation=0.52, baseline=0.45),
            "b": OodSet("", foundation=0.60, baseline=0.55),
        },
        distillation={
            "from_foundation": {"int8_accuracy": 0.50},
            "from_baseline": {"int8_accuracy": 0.51},
        },
    )
    drop = result.mean_ood_drop()
    assert drop == pytest.approx({"foundation": 0.62 - 0.56, "baseline": 0.60 - 0.50})
    assert result.goals() == {
        "ten_x_label_efficiency": True,  # best at 10 (0.35) >= baseline at 100 (0.34)
        "all_labels_at_least_baseline": True,  # 0.62 >= 0.60
        "out_of_distribution_loses_less": True,  # 0.06 < 0.10
        "distilled_at_least_as_accurate": False,  # 0.50 < 0.51
    }
    assert FoundationResult().goals() == dict.fromkeys(result.goals())


def test_every_ood_set_changes_a_real_task_setting() -> None:
    fields = set(load_preset("default").task.radio.model_dump())
    for _name, _description, changes in OOD_SETS:
        assert changes and set(changes) <= fields
