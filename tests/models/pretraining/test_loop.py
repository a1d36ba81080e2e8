"""The pretraining loop learns, resumes exactly after a kill, and refuses a foreign state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tinylarge.models.checkpoints import CONFIG_FILE, TRAINER_STATE_FILE, WEIGHTS_FILE
from tinylarge.models.pretraining.loop import (
    PretrainConfig,
    Replica,
    global_batch,
    pretrain,
    read_trainer_state,
)
from tinylarge.models.rf_transformer import rf_transformer

#: A toy run that completes quickly and checkpoints after every step.
KILLED: dict[str, Any] = {
    "size": "xs", "steps": 120, "batch_size": 16, "learning_rate": 5e-3, "warmup_steps": 10,
    "eval_frames": 64, "eval_every_steps": 40, "checkpoint_every_steps": 1,
}  # fmt: skip


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, as in the subprocess and the Ray workers (the same float sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_replicas_shards_make_up_each_steps_global_batch() -> None:
    config = PretrainConfig(size="xs", batch_size=12, seed=4)
    x, mask = global_batch(config, 3, tokens=16)
    assert x.shape == (12, 2, 128) and mask.shape == (12, 16)
    shards = [Replica(rank, 3).shard(x) for rank in range(3)]
    assert torch.equal(torch.cat(shards), x)
    again, _ = global_batch(config, 3, tokens=16)
    later, _ = global_batch(config, 4, tokens=16)
    assert torch.equal(again, x) and not torch.equal(later, x)


def test_a_batch_that_the_replicas_cannot_share_equally_is_refused(tmp_path: Path) -> None:
    config = PretrainConfig(size="xs", steps=1, batch_size=10)
    with pytest.raises(ValueError, match=r"batch_size \(10\) must be divisible by the 3"):
        pretrain(config, tmp_path, replica=Replica(0, 3))


@pytest.mark.slow
def test_pretraining_a_toy_model_beats_predicting_zeros(tmp_path: Path, one_thread: None) -> None:
    # about 15 s on 2 busy cores
    config = PretrainConfig(size="xs", steps=300, batch_size=64, learning_rate=5e-3,
                            warmup_steps=30, eval_frames=512, eval_every_steps=100)  # fmt: skip
    seen: list[int] = []
    result = pretrain(config, tmp_path, progress=lambda step, *_: seen.append(step), command="x")
    assert seen == list(range(1, 301))
    assert result.steps == 300 and result.frames == 300 * 64 and result.resumed_from_step == 0
    assert 0.45 < result.zero_prediction_loss < 0.55  # unit-power frames: half is hidden power
    assert result.final_reconstruction_loss < 0.98 * result.zero_prediction_loss
    assert not (tmp_path / TRAINER_STATE_FILE).exists()  # a finished run leaves the checkpoint
    recorded = json.loads((tmp_path / CONFIG_FILE).read_text())["pretraining"]
    assert recorded["final_reconstruction_loss"] == result.final_reconstruction_loss
    assert recorded["command"] == "x" and recorded["frames"] == 300 * 64
    model = rf_transformer((2, 128), 8, size="xs", checkpoint=str(tmp_path))
    weights = load_file(str(tmp_path / WEIGHTS_FILE))
    assert torch.equal(model.state_dict()["blocks.1.attn.qkv.weight"],
                       weights["blocks.1.attn.qkv.weight"])  # fmt: skip


def _kill_after_step(directory: Path, step: int, config: dict[str, Any]) -> int:
    """Run `pretrain` in a subprocess, SIGKILL it once its trainer state reaches ``step``;
    return the step of the state it left."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from tinylarge.models.pretraining.loop import PretrainConfig, pretrain\n"
        f"pretrain(PretrainConfig(**{config!r}), sys.argv[1])\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(directory)])
    state = directory / TRAINER_STATE_FILE
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if state.is_file():
                reached = torch.load(state, weights_only=True)["trainer"]["step"]
                if reached >= step:
                    break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    left: int = torch.load(state, weights_only=True)["trainer"]["step"]
    return left


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights_bit_for_bit(
    tmp_path: Path, one_thread: None
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    left = _kill_after_step(killed, 10, KILLED)
    assert 10 <= left < KILLED["steps"]
    assert not (killed / WEIGHTS_FILE).exists()
    resumed = pretrain(PretrainConfig(**KILLED), killed)
    assert resumed.resumed_from_step == left
    straight = pretrain(PretrainConfig(**KILLED), whole)
    assert resumed.train_loss == straight.train_loss
    assert resumed.final_reconstruction_loss == straight.final_reconstruction_loss
    mine, theirs = load_file(str(killed / WEIGHTS_FILE)), load_file(str(whole / WEIGHTS_FILE))
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


class _Stop(Exception):
    pass


def interrupted_run(directory: Path, config: PretrainConfig, after: int) -> None:
    """Leave ``trainer_state.pt`` of ``config`` at step ``after`` in ``directory`` (as a kill
    would: the run stops by an exception in its progress callback)."""

    def stop(step: int, *_: float) -> None:
        if step == after:
            raise _Stop

    with pytest.raises(_Stop):
        pretrain(config, directory, progress=stop)


def test_a_state_made_with_other_settings_is_refused_naming_them(tmp_path: Path) -> None:
    config = PretrainConfig(size="xs", steps=5, batch_size=8, eval_frames=16,
                            checkpoint_every_steps=1)  # fmt: skip
    interrupted_run(tmp_path, config, after=2)
    more_steps = PretrainConfig(size="xs", steps=9, batch_size=8, eval_frames=16)
    state = read_trainer_state(more_steps, tmp_path)  # steps and cadence may change
    assert state is not None and state["trainer"]["step"] == 2
    other = PretrainConfig(size="xs", steps=5, batch_size=8, eval_frames=16, mask_ratio=0.5)
    with pytest.raises(ValueError, match=r"other settings \(mask_ratio=0\.3; now mask_ratio=0\.5"):
        pretrain(other, tmp_path)
    assert read_trainer_state(other, tmp_path / "empty") is None
