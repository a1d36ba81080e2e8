"""Pretraining on Ray Train workers (DDP over gloo) follows the one-process loss curve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinylarge.models.checkpoints import CONFIG_FILE, TASK_HEAD_PREFIXES, WEIGHTS_FILE
from tinylarge.models.pretraining.loop import PretrainConfig, PretrainResult, pretrain
from tinylarge.models.pretraining.ray_train import pretrain_on_ray, worker_threads
from tinylarge.models.rf_transformer import rf_transformer

CONFIG = PretrainConfig(size="xs", steps=8, batch_size=16, learning_rate=5e-3, warmup_steps=2,
                        eval_frames=64, eval_every_steps=4, checkpoint_every_steps=1)  # fmt: skip


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread in this process, as each worker has (the same float sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_workers_share_the_node_s_cpus_unless_told() -> None:
    assert worker_threads(3, local_workers=2) == 3
    assert worker_threads(None, local_workers=1_000_000) == 1
    assert worker_threads(None, local_workers=1) >= 1


@pytest.mark.parametrize(
    ("workers", "threads", "message"),
    [(0, None, "need workers >= 1 and threads >= 1, got 0"),
     (2, 0, "need workers >= 1 and threads >= 1, got 2 and 0"),
     (3, None, r"batch_size \(16\) must be divisible by the 3 workers")],
)  # fmt: skip
def test_bad_worker_settings_are_refused_before_ray_starts(
    tmp_path: Path, workers: int, threads: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pretrain_on_ray(CONFIG, tmp_path, workers=workers, threads=threads)


def _assert_same_run(
    ray_dir: Path, ray: PretrainResult, one: PretrainResult, one_dir: Path
) -> None:
    """Same loss curve (float tolerance) and weights as the one-process run; loadable."""
    assert [s for s, _ in ray.train_loss] == [s for s, _ in one.train_loss]
    torch.testing.assert_close(
        torch.tensor([v for _, v in ray.train_loss]),
        torch.tensor([v for _, v in one.train_loss]),
        rtol=1e-4, atol=0.0,
    )  # fmt: skip
    theirs, mine = load_file(str(ray_dir / WEIGHTS_FILE)), load_file(str(one_dir / WEIGHTS_FILE))
    assert theirs.keys() == mine.keys()
    for key in mine:
        torch.testing.assert_close(theirs[key], mine[key], rtol=1e-3, atol=1e-5, msg=key)
    loaded = rf_transformer((2, 128), 8, size="xs", checkpoint=str(ray_dir)).state_dict()
    encoder = [k for k in theirs if not k.startswith(TASK_HEAD_PREFIXES)]
    assert len(encoder) > 20
    assert all(torch.equal(loaded[k], theirs[k]) for k in encoder)


@pytest.mark.slow
@pytest.mark.system
def test_two_workers_follow_the_one_process_loss_curve(
    tmp_path: Path, ray_local: None, one_thread: None
) -> None:
    one = pretrain(CONFIG, tmp_path / "one")
    seen: list[tuple[int, int]] = []
    ray = pretrain_on_ray(CONFIG, tmp_path / "ray", workers=2, threads=1, command="cmd",
                          progress=lambda step, steps, *_: seen.append((step, steps)))  # fmt: skip
    assert ray.steps == 8 and ray.frames == 8 * 16 and ray.resumed_from_step == 0
    assert seen and seen[-1] == (8, 8)  # rank 0's last step reached this process
    _assert_same_run(tmp_path / "ray", ray, one, tmp_path / "one")
    assert ray.final_reconstruction_loss == pytest.approx(one.final_reconstruction_loss, rel=1e-4)
    recorded = json.loads((tmp_path / "ray" / CONFIG_FILE).read_text())["pretraining"]
    assert recorded["workers"] == 2 and recorded["command"] == "cmd"


class _Stop(Exception):
    pass


@pytest.mark.slow
@pytest.mark.system
def test_two_workers_resume_a_run_that_one_process_began(
    tmp_path: Path, ray_local: None, one_thread: None
) -> None:
    def stop(step: int, *_: float) -> None:
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):
        pretrain(CONFIG, tmp_path / "ray", progress=stop)
    one = pretrain(CONFIG, tmp_path / "one")
    ray = pretrain_on_ray(CONFIG, tmp_path / "ray", workers=2, threads=1)
    assert ray.resumed_from_step == 3
    _assert_same_run(tmp_path / "ray", ray, one, tmp_path / "one")
