"""The live loop keeps a bounded window of the most recent labelled frames: an edge that runs
for days must not grow without bound (a 30-minute soak grew by ~48 MB a minute before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.deploy.live_loop import LABELS_FILE, LiveLoop
from tinylarge.secure.identity import Identity


def _loop(state: Path, max_kept: int) -> LiveLoop:
    spec = TrainingSpec(epochs=1, batch_size=16, patience_epochs=0)
    return LiveLoop(state, nn.Linear(3, 2), ("a", "b"), spec, Identity.generate("edge"), "mcu",
                    update_every=10_000, max_kept=max_kept)  # fmt: skip


def test_only_the_most_recent_frames_are_kept_and_saved(tmp_path: Path) -> None:
    loop = _loop(tmp_path, max_kept=10)
    for k in range(9):  # 63 frames, numbered in order of arrival
        x = np.arange(7 * k, 7 * k + 7, dtype=np.float32)[:, None].repeat(3, axis=1)
        loop.add(x, np.stack([x[:, 0], -x[:, 0]], axis=1))
        assert loop.held <= 2 * loop.max_kept
    assert loop.gathered == 63
    loop.save()
    with np.load(tmp_path / LABELS_FILE) as saved:
        assert saved["x"][:, 0].tolist() == list(range(53, 63))
        assert saved["logits"][:, 1].tolist() == [-v for v in range(53, 63)]
    again = _loop(tmp_path, max_kept=10)  # a restart reads back the same window
    assert again.held == 10


def test_a_bad_bound_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_kept must be >= 1"):
        _loop(tmp_path, max_kept=0)
