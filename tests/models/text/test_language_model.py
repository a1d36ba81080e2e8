"""Our causal transformer behind the `LanguageModel` interface: batched KV-cache `extend`
equals teacher forcing, the sliding window, MAC counts and the named sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinylarge.models.text.language_model import (
    LM_SIZES,
    CausalTransformer,
    DecodeState,
    LanguageModel,
    LmArchitecture,
    OurLanguageModel,
    lm_architecture,
    macs_per_token,
)

VOCAB = 61


def _model(seed: int = 0, context: int = 16) -> OurLanguageModel:
    torch.manual_seed(seed)
    return OurLanguageModel(CausalTransformer(LmArchitecture(VOCAB, 24, 2, 3, context)), "toy")


def _reference(model: OurLanguageModel, sequence: list[int]) -> torch.Tensor:
    """Teacher-forced logits after the last token of the window the sliding-window rule keeps:
    the whole sequence while it fits the context; after an overflow, the last context // 2
    tokens at the overflow, then everything appended since."""
    return model.logits(torch.tensor([sequence]))[0, -1]


def test_batched_extend_equals_teacher_forcing_with_sliding_windows() -> None:
    model = _model()
    assert isinstance(model, LanguageModel)
    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, VOCAB, 60).tolist() for _ in range(4)]
    prompts = [1, 3, 16, 5]
    states = [model.start(s[:p]) for s, p in zip(sequences, prompts, strict=True)]
    assert all(isinstance(s, DecodeState) for s in states)
    windows = [s[:p] for s, p in zip(sequences, prompts, strict=True)]
    used = list(prompts)
    overflowed = 0
    for _ in range(25):
        counts = rng.choice([0, 0, 1, 2, 3, 7], size=4).tolist()
        chunks = [s[u : u + n] for s, u, n in zip(sequences, used, counts, strict=True)]
        logits = model.extend(states, chunks)
        assert logits.shape == (4, VOCAB) and logits.dtype == torch.float32
        for i, chunk in enumerate(chunks):
            used[i] += len(chunk)
            window = windows[i] + chunk
            if len(window) > model.context_tokens:
                window, overflowed = window[-(model.context_tokens // 2) :], overflowed + 1
            windows[i] = window
            torch.testing.assert_close(logits[i], _reference(model, window), atol=1e-4, rtol=0)
            assert states[i].length == used[i]
            torch.testing.assert_close(states[i].last_logits, logits[i])
    assert overflowed >= 4


def test_an_empty_extension_returns_the_last_logits_unchanged() -> None:
    model = _model()
    state = model.start([4, 5, 6])
    before = state.last_logits.clone()
    torch.testing.assert_close(model.extend([state], [[]])[0], before, atol=0, rtol=0)
    assert state.length == 3
    assert model.extend([], []).shape == (0, VOCAB)


def test_a_long_prompt_keeps_its_last_half_context() -> None:
    model = _model()
    prompt = list(range(40))
    state = model.start(prompt)
    assert state.length == 40
    torch.testing.assert_close(state.last_logits, _reference(model, prompt[-8:]), atol=1e-4, rtol=0)


def test_bad_input_fails_clearly() -> None:
    model, other = _model(), _model(1)
    state = model.start([1])
    with pytest.raises(ValueError, match="at least one token"):
        model.start([])
    with pytest.raises(ValueError, match=r"token id 61 is outside the vocabulary 0\.\.60"):
        model.extend([state], [[61]])
    with pytest.raises(ValueError, match="got 1 state\\(s\\) but 2 token list\\(s\\)"):
        model.extend([state], [[1], [2]])
    with pytest.raises(ValueError, match="must come from this model's start"):
        other.extend([state], [[1]])
    with pytest.raises(ValueError, match="appears twice"):
        model.extend([state, state], [[1], [2]])
    with pytest.raises(ValueError, match="17 tokens exceed the context of 16"):
        model.logits(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of heads"):
        LmArchitecture(10, 10, 1, 3, 8)
    with pytest.raises(ValueError, match="unknown language-model size 'huge'; sizes: toy, draft"):
        lm_architecture("huge", 1024)


def test_macs_per_token_by_hand() -> None:
    draft = lm_architecture("draft", 1024)
    # 3 layers x (12 x 48^2 + 2 x 48 x 128) + 48 x 1024
    assert macs_per_token(draft, 128) == 3 * (27_648 + 12_288) + 49_152 == 168_960
    assert macs_per_token(draft, 1) == 3 * (27_648 + 96) + 49_152
    with pytest.raises(ValueError, match=r"context_length must lie in 1\.\.128"):
        macs_per_token(draft, 129)


def test_named_sizes_and_parameter_counts() -> None:
    counts = {}
    for size in LM_SIZES:
        arch = lm_architecture(size, 1024)
        d, n = arch.d_model, arch.layers
        expected = 1024 * d + arch.context * d + n * (12 * d * d + 13 * d) + 2 * d
        counts[size] = OurLanguageModel(CausalTransformer(arch)).parameter_count
        assert counts[size] == expected, size
    assert 20_000 <= counts["toy"] <= 50_000
    assert counts["draft"] == 140_208
    assert counts["target"] >= 20 * counts["draft"]
