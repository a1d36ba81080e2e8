"""Distilling a toy student from a toy teacher: the loss by hand, the student moves toward the
teacher, alpha = 0 is the labels-only training bit for bit, exact resume, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import TRAINER_STATE_FILE, load_our_language_model
from tinylarge.models.text.distillation import (
    Teacher,
    check_teacher,
    distillation_loss,
    load_teacher,
    teacher_log_probs,
    teacher_match,
)
from tinylarge.models.text.tokenizer import BpeTokenizer, encode_documents, train_bpe
from tinylarge.models.text.training import LmTrainConfig, train_language_model

DOCS = [f"The value of x{i % 7} is {i % 5}. Then x{i % 7} + 1 is {i % 5 + 1}." for i in range(300)]

Data = tuple[BpeTokenizer, np.ndarray, np.ndarray]


def _config(**changes: object) -> LmTrainConfig:
    settings = {"size": "toy", "steps": 30, "batch_size": 8, "learning_rate": 1e-2,
                "warmup_steps": 5, "eval_every_steps": 10, "checkpoint_every_steps": 10,
                "eval_tokens": 200, **changes}  # fmt: skip
    return LmTrainConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models train fastest (and never wait on a busy core) with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> Data:
    tokenizer = train_bpe(DOCS, 300)
    train, held = (encode_documents(tokenizer, part) for part in (DOCS[:270], DOCS[270:]))
    return tokenizer, train, held


@pytest.fixture(scope="module")
def teacher_dir(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy model trained on the labels (seed 7), so it differs from every student."""
    tokenizer, train, held = data
    directory = tmp_path_factory.mktemp("teacher")
    train_language_model(_config(steps=25, seed=7), train, held, directory, tokenizer=tokenizer)
    return directory


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def test_the_loss_matches_a_hand_computation() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 11, generator=generator)
    teacher = torch.randn(2, 5, 11, generator=generator)
    targets = torch.randint(0, 11, (2, 5), generator=generator)
    p, q = teacher.softmax(-1), student.softmax(-1)
    kl = float((p * (p.log() - q.log())).sum() / 10)
    ce = float(-q.log().gather(-1, targets[..., None]).mean())
    log_p = teacher.log_softmax(-1)
    assert float(distillation_loss(student, targets, log_p, 1.0)) == pytest.approx(kl, rel=1e-5)
    mixed = float(distillation_loss(student, targets, log_p, 0.25))
    assert mixed == pytest.approx(0.25 * kl + 0.75 * ce, rel=1e-5)
    labels_only = F.cross_entropy(student.flatten(0, 1), targets.flatten())
    assert torch.equal(distillation_loss(student, targets, None, 0.0), labels_only)
    with pytest.raises(ValueError, match="needs the teacher's log-probabilities"):
        distillation_loss(student, targets, None, 0.5)


def test_teacher_log_probs_are_normalised_and_usable_in_a_loss(teacher_dir: Path) -> None:
    teacher = load_teacher(str(teacher_dir))
    vocab = teacher.model.architecture.vocab_size
    tokens = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(1))
    log_p = teacher_log_probs(teacher.model, tokens)
    assert log_p.shape == (2, 16, vocab) and not log_p.is_inference()
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(2, 16), atol=1e-5)
    student = CausalTransformer(lm_architecture("toy", vocab))
    distillation_loss(student(tokens), tokens, log_p, 1.0).backward()  # type: ignore[no-untyped-call]
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_a_model_matches_itself_exactly(data: Data, teacher_dir: Path) -> None:
    _, _, held = data
    model = load_teacher(str(teacher_dir)).model
    match = teacher_match(model, model, held)
    assert match.tokens == len(held) - 1
    assert match.kl == pytest.approx(0.0, abs=1e-6)
    assert match.agreement == 1.0 and match.acceptance == pytest.approx(1.0, abs=1e-5)


def test_distillation_moves_the_student_toward_the_teacher(data: Data, teacher_dir: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    tokenizer, train, held = data
    teacher = load_teacher(str(teacher_dir), 1.0)
    result = train_language_model(_config(), train, held, tmp_path, tokenizer=tokenizer,
                                  teacher=teacher)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = CausalTransformer(lm_architecture("toy", tokenizer.vocab_size))
    before = teacher_match(untrained, teacher.model, held)
    after = teacher_match(load_our_language_model(tmp_path).model, teacher.model, held)
    assert after.kl < 0.5 * before.kl
    assert after.agreement > before.agreement
    assert after.acceptance > before.acceptance + 0.2
    record = json.loads((tmp_path / "config.json").read_text())["training"]
    losses = [loss for _, loss in record["train_loss"]]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    teacher_sha = json.loads((teacher_dir / "config.json").read_text())["weights_sha256"]
    distillation = record["distillation"]
    assert distillation["teacher"] == str(teacher_dir) and distillation["distill_weight"] == 1.0
    assert distillation["teacher_weights_sha256"] == teacher_sha
    assert distillation["held_out_teacher_kl"] == pytest.approx(after.kl, rel=1e-5)
    assert distillation["held_out_acceptance"] == pytest.approx(after.acceptance, rel=1e-5)
    assert result.teacher_match is not None
    assert result.teacher_match.agreement == distillation["held_out_teacher_agreement"]


def test_alpha_zero_is_labels_only_training_bit_for_bit(data: Data, teacher_dir: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    tokenizer, train, held = data
    config = _config(steps=12)
    train_language_model(config, train, held, tmp_path / "ce", tokenizer=tokenizer)
    train_language_model(config, train, held, tmp_path / "kd0", tokenizer=tokenizer,
                         teacher=load_teacher(str(teacher_dir), 0.0))  # fmt: skip
    train_language_model(config, train, held, tmp_path / "kd1", tokenizer=tokenizer,
                         teacher=load_teacher(str(teacher_dir), 1.0))  # fmt: skip
    ce, kd0, kd1 = (_weights(tmp_path / name) for name in ("ce", "kd0", "kd1"))
    assert all(torch.equal(ce[k], kd0[k]) for k in ce)
    assert not all(torch.equal(ce[k], kd1[k]) for k in ce)


def test_a_killed_distillation_resumes_exactly(data: Data, teacher_dir: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    tokenizer, train, held = data
    teacher = load_teacher(str(teacher_dir), 0.5)
    config = _config(steps=25)
    train_language_model(config, train, held, tmp_path / "whole", tokenizer=tokenizer,
                         teacher=teacher)  # fmt: skip

    class Stop(Exception):
        pass

    def stop(step: int, *_: float) -> None:
        if step == 15:
            raise Stop

    with pytest.raises(Stop):
        train_language_model(config, train, held, tmp_path / "killed", tokenizer=tokenizer,
                             teacher=teacher, progress=stop)  # fmt: skip
    with pytest.raises(ValueError, match="another teacher or distillation weight"):
        train_language_model(config, train, held, tmp_path / "killed", tokenizer=tokenizer,
                             teacher=load_teacher(str(teacher_dir), 0.4))  # fmt: skip
    with pytest.raises(ValueError, match="another teacher or distillation weight"):
        train_language_model(config, train, held, tmp_path / "killed", tokenizer=tokenizer)
    resumed = train_language_model(config, train, held, tmp_path / "killed",
                                   tokenizer=tokenizer, teacher=teacher)  # fmt: skip
    assert resumed.resumed_from_step == 10
    assert not (tmp_path / "killed" / TRAINER_STATE_FILE).exists()
    whole, killed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert all(torch.equal(whole[k], killed[k]) for k in whole)


def test_a_teacher_with_another_vocabulary_is_refused(teacher_dir: Path, tmp_path: Path) -> None:
    teacher = load_teacher(str(teacher_dir))
    smaller = train_bpe(DOCS, 270)  # the teacher's has 278 tokens (all merges of DOCS)
    with pytest.raises(ValueError, match="vocabulary of 278 tokens, the student's tokenizer 270"):
        train_language_model(_config(), encode_documents(smaller, DOCS[:270]),
                             encode_documents(smaller, DOCS[270:]), tmp_path / "a",
                             tokenizer=smaller, teacher=teacher)  # fmt: skip
    other = train_bpe([d.replace("value", "worth") for d in DOCS], 300)
    assert other.vocab_size == teacher.tokenizer.vocab_size
    with pytest.raises(ValueError, match="is not the teacher's"):
        train_language_model(_config(), encode_documents(other, DOCS[:270]),
                             encode_documents(other, DOCS[270:]), tmp_path / "b",
                             tokenizer=other, teacher=teacher)  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_teachers_are_refused_clearly(teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got 1.5"):
        load_teacher(str(teacher_dir), 1.5)
    with pytest.raises(ValueError, match="is not a directory"):
        load_teacher(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="other models cannot teach"):
        load_teacher(str(tmp_path))
    teacher = load_teacher(str(teacher_dir))
    assert isinstance(teacher, Teacher) and teacher.model.architecture.context == 64
    check_teacher(teacher, teacher.tokenizer, 64)
    with pytest.raises(ValueError, match=r"context \(64 tokens\) is shorter than .* \(128"):
        check_teacher(teacher, teacher.tokenizer, 128)
