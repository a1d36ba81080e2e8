"""The byte-level BPE tokenizer: deterministic training, exact round trips, EOS, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.models.text.tokenizer import EOS_TOKEN, BpeTokenizer, encode_documents, train_bpe

DOCS = [
    "The speculative sampling rule accepts a draft token.",
    "def f(x):\n    return x + 1  # a comment",
    "Ünïcode text, emoji 🙂 and tabs\tsurvive.",
] * 20


def test_training_is_deterministic_and_round_trips_any_text() -> None:
    first, second = train_bpe(DOCS, 300), train_bpe(DOCS, 300)
    assert first.to_json() == second.to_json()
    assert first.vocab_size <= 300
    assert first.eos_id == first.tokenizer.token_to_id(EOS_TOKEN)
    for text in [*DOCS[:3], "never seen: ∮ ☃ \x00 bytes"]:
        ids = first.encode(text)
        assert first.decode(ids) == text
    merged = first.encode("speculative")
    assert len(merged) < len(b"speculative")  # merges were learned


def test_save_and_load_give_the_same_ids(tmp_path: Path) -> None:
    tokenizer = train_bpe(DOCS, 300)
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = BpeTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.encode(DOCS[1]) == tokenizer.encode(DOCS[1])
    assert (loaded.vocab_size, loaded.eos_id) == (tokenizer.vocab_size, tokenizer.eos_id)
    with pytest.raises(ValueError, match="does not exist"):
        BpeTokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a tokenizers JSON file"):
        BpeTokenizer.load(tmp_path / "bad.json")


def test_documents_are_joined_with_eos() -> None:
    tokenizer = train_bpe(DOCS, 300)
    stream = encode_documents(tokenizer, DOCS[:2])
    a, b = tokenizer.encode(DOCS[0]), tokenizer.encode(DOCS[1])
    assert stream.dtype == np.int32
    assert stream.tolist() == [*a, tokenizer.eos_id, *b, tokenizer.eos_id]


def test_bad_sizes_and_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"vocab_size must lie in 257\.\.65536"):
        train_bpe(DOCS, 256)
    with pytest.raises(ValueError, match="at least one document"):
        train_bpe([], 300)
    with pytest.raises(TypeError, match=r"expected a tokenizers\.Tokenizer"):
        BpeTokenizer("not a tokenizer")
