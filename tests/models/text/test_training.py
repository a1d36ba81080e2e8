"""LM training: it learns, held-out scores by hand, exact resume after a kill, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import TRAINER_STATE_FILE, load_our_language_model
from tinylarge.models.text.tokenizer import encode_documents, train_bpe
from tinylarge.models.text.training import (
    LmTrainConfig,
    held_out_score,
    learning_rate_factor,
    train_language_model,
)

DOCS = [f"The value of x{i % 7} is {i % 5}. Then x{i % 7} + 1 is {i % 5 + 1}." for i in range(300)]


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    tokenizer = train_bpe(DOCS, 300)
    return (
        tokenizer,
        encode_documents(tokenizer, DOCS[:270]),
        encode_documents(tokenizer, DOCS[270:]),
    )


def _config(**changes: object) -> LmTrainConfig:
    settings = {"size": "toy", "steps": 40, "batch_size": 8, "learning_rate": 1e-2,
                "warmup_steps": 5, "eval_every_steps": 20, "checkpoint_every_steps": 10,
                "eval_tokens": 200, **changes}  # fmt: skip
    return LmTrainConfig(**settings)  # type: ignore[arg-type]


def test_held_out_score_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = CausalTransformer(lm_architecture("toy", 50))
    ids = np.random.default_rng(0).integers(0, 50, 150).astype(np.int32)  # windows 64, 64, 21
    score = held_out_score(model, ids)
    nll, hits = 0.0, 0
    for start in (0, 64, 128):
        x = torch.from_numpy(ids[start : start + 64].astype(np.int64))[None]
        y = torch.from_numpy(ids[start + 1 : start + 65].astype(np.int64))[None]
        with torch.no_grad():
            logits = model(x[:, : y.shape[1]])
        nll += float(F.cross_entropy(logits[0], y[0], reduction="sum"))
        hits += int((logits[0].argmax(-1) == y[0]).sum())
    assert score.tokens == 149
    assert score.nll == pytest.approx(nll / 149, rel=1e-5)
    assert score.perplexity == pytest.approx(math.exp(nll / 149), rel=1e-5)
    assert score.accuracy == hits / 149


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    config = _config(steps=105)
    assert learning_rate_factor(config, 0) == pytest.approx(0.2)
    assert learning_rate_factor(config, 4) == pytest.approx(1.0)
    assert learning_rate_factor(config, 105) == pytest.approx(0.1)


@pytest.mark.slow
def test_training_learns_and_a_killed_run_resumes_exactly(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tokenizer, train, held = data
    whole = train_language_model(_config(), train, held, tmp_path / "whole", tokenizer=tokenizer,
                                 command="cmd", corpus={"corpus": "toy"})  # fmt: skip
    untrained = held_out_score(
        CausalTransformer(lm_architecture("toy", tokenizer.vocab_size)), held
    )
    assert whole.score.perplexity < 0.5 * untrained.perplexity

    class Stop(Exception):
        pass

    def stop(step: int, *_: float) -> None:
        if step == 25:
            raise Stop

    with pytest.raises(Stop):
        train_language_model(_config(), train, held, tmp_path / "killed", tokenizer=tokenizer,
                             progress=stop)  # fmt: skip
    assert (tmp_path / "killed" / TRAINER_STATE_FILE).is_file()
    resumed = train_language_model(_config(), train, held, tmp_path / "killed",
                                   tokenizer=tokenizer)  # fmt: skip
    assert resumed.resumed_from_step == 20
    assert not (tmp_path / "killed" / TRAINER_STATE_FILE).exists()
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "whole" / "config.json").read_text())["training"]
    assert record["command"] == "cmd" and record["tokens_seen"] == 40 * 8 * 64
    assert record["held_out_perplexity"] == pytest.approx(whole.score.perplexity)
    loaded = load_our_language_model(tmp_path / "whole")
    assert loaded.parameter_count == whole.parameters


def test_a_killed_run_with_other_settings_or_text_is_refused(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tokenizer, train, held = data

    class Stop(Exception):
        pass

    def stop(step: int, *_: float) -> None:
        if step == 10:
            raise Stop

    with pytest.raises(Stop):
        train_language_model(_config(), train, held, tmp_path, tokenizer=tokenizer, progress=stop)
    with pytest.raises(
        ValueError, match=r"other settings \(learning_rate=0.01; now learning_rate=0.02\)"
    ):
        train_language_model(
            _config(learning_rate=2e-2), train, held, tmp_path, tokenizer=tokenizer
        )
    with pytest.raises(ValueError, match="on other text or another tokenizer"):
        train_language_model(_config(), train[:-5], held, tmp_path, tokenizer=tokenizer)


def test_bad_settings_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown language-model size 'xl'"):
        LmTrainConfig(size="xl")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        LmTrainConfig(steps=0)
    with pytest.raises(ValueError, match="0 < learning_rate <= 1"):
        LmTrainConfig(learning_rate=0.0)
