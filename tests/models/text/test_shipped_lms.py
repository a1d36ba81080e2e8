"""The shipped draft/target pair: files intact, one shared tokenizer, the draft distilled from
the shipped target, and the held-out figures re-measured on a small sample (CPython's
language-reference topics the training held out)."""

from __future__ import annotations

import json
import platform

import pytest

from tinylarge.models.text.checkpoints import (
    builtin_lm_dir,
    check_same_vocabulary,
    load_language_model,
    load_tokenizer,
    read_lm_config,
)
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.models.text.tokenizer import encode_documents
from tinylarge.models.text.training import held_out_score

#: SHA-256 of the shipped weights (also in each config.json, which `read_lm_config` checks).
WEIGHTS_SHA256 = {
    "draft": "b72bfcf6ba588e9750fa87ee2ea29b1be32ce160fea4d2f93d0bd8e1fa1c1fe9",
    "target": "7aa8226f60f62973701b19fd53153240d139146439ca588e8a57ce20ee688ffd",
}
#: Perplexity and next-token accuracy on the held-out topics sample (1,929 tokens scored on
#: Python 3.11.7, the text the pair was trained on), measured after training.
SAMPLE_SCORES = {
    "draft": (43.94909216796001, 476 / 1929),
    "target": (14.892049801583669, 808 / 1929),
}
SAMPLE_PYTHON = "3.11.7"


def _held_out_topics() -> list[str]:
    """Documents 19, 39 and 59 of the default corpus (every 20th is held out); the corpus
    starts with the language-reference topics sorted by name, so these need no stdlib scan."""
    from pydoc_data.topics import topics

    documents = [topics[name].strip() for name in sorted(topics) if topics[name].strip()]
    return [documents[19], documents[39], documents[59]]


def test_the_files_match_their_hashes_and_share_one_tokenizer() -> None:
    configs = {role: read_lm_config(builtin_lm_dir(role)) for role in ("draft", "target")}
    for role, document in configs.items():
        assert document["weights_sha256"] == WEIGHTS_SHA256[role], role
        assert document["training"]["command"].startswith("tinylarge pretrain --task text")
    assert configs["draft"]["tokenizer_sha256"] == configs["target"]["tokenizer_sha256"]
    assert configs["target"]["parameters"] >= 20 * configs["draft"]["parameters"]
    draft_training, target_training = configs["draft"]["training"], configs["target"]["training"]
    assert target_training["held_out_perplexity"] < draft_training["held_out_perplexity"]
    assert target_training["held_out_accuracy"] > draft_training["held_out_accuracy"]
    distillation = draft_training["distillation"]
    assert distillation["teacher"] == "builtin" and distillation["distill_weight"] == 1.0
    assert distillation["teacher_weights_sha256"] == configs["target"]["weights_sha256"]
    assert "distillation" not in target_training


def test_the_held_out_figures_reproduce_and_the_target_is_better() -> None:
    tokenizer = load_tokenizer("builtin", role="draft")
    ids = encode_documents(tokenizer, _held_out_topics())
    scores = {}
    for role in ("draft", "target"):
        model = load_language_model("builtin", role=role)
        assert isinstance(model, OurLanguageModel)
        scores[role] = held_out_score(model.model, ids)
        if platform.python_version() == SAMPLE_PYTHON:  # other Pythons have other topics text
            perplexity, accuracy = SAMPLE_SCORES[role]
            assert scores[role].tokens == 1929
            assert scores[role].perplexity == pytest.approx(perplexity, rel=1e-4), role
            assert scores[role].accuracy == pytest.approx(accuracy, abs=1.5 / 1929), role
    assert scores["target"].accuracy > scores["draft"].accuracy + 0.1
    assert scores["target"].perplexity < 0.8 * scores["draft"].perplexity
    draft, target = (load_language_model("builtin", role=r) for r in ("draft", "target"))
    check_same_vocabulary(draft, target, tokenizer, load_tokenizer("builtin", role="target"))
    recorded = json.loads((builtin_lm_dir("draft") / "config.json").read_text())
    assert recorded["architecture"]["vocab_size"] == tokenizer.vocab_size == 1024
