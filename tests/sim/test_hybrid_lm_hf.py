"""The hybrid schemes through models users bring: two tiny random Hugging Face Llamas saved
with save_pretrained (local files only), with the shipped tokenizer, run as draft and target
by the same text pipeline; and a pair whose vocabularies differ is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tinylarge.config import load_preset, scenario_from_table
from tinylarge.config.loading import scenario_to_table
from tinylarge.models.text.checkpoints import load_tokenizer
from tinylarge.report import collect
from tinylarge.sim import run


def _llama(directory: Path, layers: int, width: int, vocab: int, seed: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64, tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(directory)
    shipped = load_tokenizer("builtin")
    fast = PreTrainedTokenizerFast(tokenizer_object=shipped.tokenizer,  # type: ignore[attr-defined]
                                   eos_token="<|endoftext|>")  # fmt: skip
    fast.save_pretrained(directory)
    return directory


def _scenario(draft: Path, target: Path) -> object:
    table = scenario_to_table(load_preset("hybrid-lm"))
    table["hybrid_lm"].update(  # type: ignore[union-attr]
        {"draft": str(draft), "target": str(target), "eval_tokens": 300, "prompts": 2,
         "tokens_per_prompt": 6, "devices": 3, "tokens_per_device": 6}
    )  # fmt: skip
    table["network"]["compare_profiles"] = ["redcap"]  # type: ignore[index]
    return scenario_from_table(table, "hf-pair")


@pytest.mark.slow
def test_every_scheme_runs_through_hugging_face_models_from_local_directories(
    tmp_path: Path,
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vocab = load_tokenizer("builtin").vocab_size
    draft = _llama(tmp_path / "draft", 1, 16, vocab, seed=0)
    target = _llama(tmp_path / "target", 2, 64, vocab, seed=1)
    result = run(_scenario(draft, target))  # type: ignore[arg-type]
    hybrid = json.loads(json.dumps(collect(result)))["hybrid_lm"]
    assert hybrid["models"]["target"]["source"] == str(target)
    assert hybrid["models"]["draft"]["parameters"] < hybrid["models"]["target"]["parameters"]
    # a model of another family is priced at one MAC per parameter on the MCU
    assert (
        hybrid["models"]["draft"]["mcu"]["macs_per_token"]
        == hybrid["models"]["draft"]["parameters"]
    )
    for scheme in ("slm", "llm", "hlm", "u_hlm", "cu_hlm"):
        assert hybrid[scheme]["tokens_per_s"] > 0
    assert hybrid["hlm"]["quality_vs_llm"] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_pair_with_different_vocabularies_is_refused(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vocab = load_tokenizer("builtin").vocab_size
    draft = _llama(tmp_path / "draft", 1, 16, vocab, seed=0)
    target = _llama(tmp_path / "target", 1, 16, vocab + 8, seed=1)
    with pytest.raises(ValueError, match="vocabular"):
        run(_scenario(draft, target))  # type: ignore[arg-type]
