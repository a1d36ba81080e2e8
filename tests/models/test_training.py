from __future__ import annotations

import numpy as np
import pytest
import torch

from tinylarge.config import TrainingSpec
from tinylarge.models import build_model
from tinylarge.models.evaluation import predict_logits
from tinylarge.models.training import TrainingReport, train


def _toy_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: a rising or a falling ramp on channel 0, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    ramp = np.linspace(-1, 1, 32, dtype=np.float32)
    x = rng.normal(0, 0.5, (n, 2, 32)).astype(np.float32)
    x[:, 0] += np.where(y[:, None] == 1, ramp, -ramp)
    return x, y.astype(np.int64)


def test_training_learns_a_separable_problem() -> None:
    x, y = _toy_data()
    model = build_model("tiny_cnn", (2, 32), 2, {"width": 4}, seed=0)
    report = train(model, x, y, TrainingSpec(epochs=8, batch_size=32, learning_rate=1e-2), seed=0)
    x_test, y_test = _toy_data(200, seed=1)
    accuracy = (predict_logits(model, x_test).argmax(1) == y_test).mean()
    assert accuracy > 0.9
    assert report.history[-1].train_loss < report.history[0].train_loss
    assert report.n_train + report.n_val == len(x)


def test_training_is_deterministic_under_a_seed() -> None:
    x, y = _toy_data()
    spec = TrainingSpec(epochs=2, batch_size=64)
    states = []
    for seed in (3, 3, 4):
        model = build_model("tiny_cnn", (2, 32), 2, {"width": 4}, seed=0)
        train(model, x, y, spec, seed=seed)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_early_stopping_stops_and_keeps_best_weights() -> None:
    x, y = _toy_data(200)
    y = np.random.default_rng(0).permutation(y)  # pure noise: validation loss stops improving
    model = build_model("tiny_cnn", (2, 32), 2, {"width": 8}, seed=0)
    spec = TrainingSpec(
        epochs=60, batch_size=16, learning_rate=3e-2, patience_epochs=3, schedule="constant"
    )
    report = train(model, x, y, spec, seed=0)
    assert report.stopped_early
    assert report.epochs_run == report.best_epoch + 1 + 3
    best_val = min(r.val_loss for r in report.history if r.val_loss is not None)
    assert report.history[report.best_epoch].val_loss == best_val


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
def test_schedules_set_the_learning_rate(schedule: str) -> None:
    x, y = _toy_data(100)
    model = build_model("tiny_cnn", (2, 32), 2, {"width": 2}, seed=0)
    spec = TrainingSpec(
        epochs=4,
        batch_size=50,
        learning_rate=0.1,
        schedule=schedule,  # type: ignore[arg-type]
        step_size_epochs=2,
        step_gamma=0.5,
        val_fraction=0.0,
    )
    lrs = [r.learning_rate for r in train(model, x, y, spec, seed=0).history]
    expected = {
        "constant": [0.1] * 4,
        "step": [0.1, 0.1, 0.05, 0.05],
        "cosine": [0.05 * (1 + np.cos(np.pi * e / 4)) for e in range(4)],
    }[schedule]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)


def test_report_round_trips_through_a_dict() -> None:
    x, y = _toy_data(100)
    model = build_model("tiny_cnn", (2, 32), 2, {"width": 2}, seed=0)
    report = train(model, x, y, TrainingSpec(epochs=2, batch_size=50), seed=0)
    assert TrainingReport.from_dict(report.to_dict()) == report


def test_bad_inputs_are_rejected() -> None:
    model = build_model("tiny_cnn", (2, 32), 2, seed=0)
    x, y = _toy_data(10)
    with pytest.raises(ValueError, match=r"x of shape \(n, ...\) and y of shape \(n,\)"):
        train(model, x, y[:5], seed=0)
    with pytest.raises(ValueError, match="leaves no validation"):
        train(model, x[:3], y[:3], TrainingSpec(val_fraction=0.1), seed=0)
