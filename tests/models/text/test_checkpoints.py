"""LM checkpoints: save/load round trips, hash checks, Hugging Face causal LMs from local
directories (never the Hub), and the shared-vocabulary check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import (
    check_same_vocabulary,
    load_language_model,
    load_tokenizer,
    save_lm_checkpoint,
)
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.models.text.tokenizer import train_bpe

DOCS = ["alpha beta gamma delta", "def f(x): return x * 2", "the quick brown fox"] * 10


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return train_bpe(DOCS, 300)


@pytest.fixture
def ours(tokenizer, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = CausalTransformer(lm_architecture("toy", tokenizer.vocab_size))
    return save_lm_checkpoint(tmp_path / "ours", model, tokenizer, {"seed": 0})


def test_our_checkpoint_round_trips(ours: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = load_language_model(str(ours), role="draft")
    assert isinstance(model, OurLanguageModel) and model.name == "ours"
    torch.manual_seed(0)
    fresh = CausalTransformer(lm_architecture("toy", tokenizer.vocab_size))
    tokens = torch.tensor([tokenizer.encode(DOCS[1])])
    torch.testing.assert_close(model.logits(tokens), fresh(tokens).detach(), atol=0, rtol=0)
    loaded = load_tokenizer(str(ours))
    assert loaded.encode(DOCS[0]) == tokenizer.encode(DOCS[0])
    document = json.loads((ours / "config.json").read_text())
    assert document["kind"] == "tinylarge_causal_lm" and document["training"] == {"seed": 0}


def test_damaged_or_foreign_directories_fail_clearly(ours: Path, tmp_path: Path) -> None:
    weights = ours / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        load_language_model(str(ours), role="draft")
    with pytest.raises(ValueError, match="target language model 'no/such/dir' is not a directory"):
        load_language_model("no/such/dir", role="target")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a tinylarge LM checkpoint nor a Hugging Face"):
        load_language_model(str(tmp_path / "empty"), role="draft")


def test_a_hub_id_is_refused_before_transformers_is_imported() -> None:
    code = (
        "import sys\n"
        "from tinylarge.models.text.checkpoints import load_language_model\n"
        "try:\n    load_language_model('gpt2', role='target')\n"
        "except ValueError as e:\n    print('refused:', e)\n"
        "print('transformers' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout  # fmt: skip
    assert "refused: target language model 'gpt2' is not a directory" in out
    assert out.strip().endswith("False")


@pytest.fixture(scope="module")
def llama_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=24, tie_word_embeddings=True)  # fmt: skip
    directory = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(config).save_pretrained(directory)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer.tokenizer, eos_token="<|endoftext|>")
    fast.save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_a_hugging_face_llama_loads_and_extends_like_its_own_forward(  # type: ignore[no-untyped-def]
    llama_dir: Path, tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    from tinylarge.models.text import hf_causal

    batched: list[int] = []
    step = hf_causal._batched_step

    def counted(model: object, states: list[object], rows: list[list[int]]) -> None:
        batched.append(len(states))
        step(model, states, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(hf_causal, "_batched_step", counted)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lm = load_language_model(str(llama_dir), role="target")
    reference = AutoModelForCausalLM.from_pretrained(llama_dir, local_files_only=True).eval()
    ids = tokenizer.encode(" ".join(DOCS))[:40]
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor([ids[:20]])).logits[0]
    torch.testing.assert_close(lm.logits(torch.tensor([ids[:20]]))[0], expected, atol=1e-5, rtol=0)
    states = [lm.start(ids[:5]), lm.start(ids[:2])]
    logits = lm.extend(states, [ids[5:9], []])
    torch.testing.assert_close(logits[0], expected[8], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[1], expected[1], atol=1e-4, rtol=0)
    logits = lm.extend(states, [ids[9:30], [ids[2]]])  # 30 > 24: re-primed on the last 12
    with torch.no_grad():
        window = reference(input_ids=torch.tensor([ids[18:30]])).logits[0, -1]
    torch.testing.assert_close(logits[0], window, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[1], expected[2], atol=1e-4, rtol=0)
    assert [s.length for s in states] == [30, 3]
    fresh = [lm.start(ids[:3]), lm.start(ids[:7]), lm.start(ids[:1])]
    logits = lm.extend(fresh, [ids[3:5], ids[7:8], ids[1:6]])  # one padded, masked forward
    for row, last in enumerate((4, 7, 5)):
        torch.testing.assert_close(logits[row], expected[last], atol=1e-4, rtol=0)
    logits = lm.extend(fresh, [ids[5:6], [], ids[6:9]])  # the caches carry on after batching
    torch.testing.assert_close(logits, expected[[5, 7, 8]], atol=1e-4, rtol=0)
    assert batched == [3, 2]
    hf_tokenizer = load_tokenizer(str(llama_dir))
    assert hf_tokenizer.encode(DOCS[2]) == tokenizer.encode(DOCS[2])
    assert hf_tokenizer.eos_id == tokenizer.eos_id


def test_the_vocabulary_check(tokenizer, ours: Path) -> None:  # type: ignore[no-untyped-def]
    draft = load_language_model(str(ours), role="draft")
    check_same_vocabulary(draft, draft, tokenizer, tokenizer)
    other_tokenizer = train_bpe([*DOCS, "zzz yyy xxx www"] * 3, 290)
    torch.manual_seed(1)
    small = OurLanguageModel(CausalTransformer(lm_architecture("toy", 290)), "small")
    with pytest.raises(ValueError, match="vocabularies differ"):
        check_same_vocabulary(draft, small, tokenizer, other_tokenizer)
    with pytest.raises(ValueError, match="encode the same text differently"):
        check_same_vocabulary(draft, draft, tokenizer, other_tokenizer)
