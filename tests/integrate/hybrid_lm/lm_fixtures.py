"""Small shared inputs for the hybrid-LM tests: the reference toy pair of distributions and a
bigram-table language model (independent of the package's transformer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

# The reference toy pair: token 4 has q = 0 where p > 0, token 7 has p = 0.
P_TOY = torch.tensor([0.30, 0.20, 0.15, 0.10, 0.10, 0.08, 0.07, 0.0], dtype=torch.float64)
Q_TOY = torch.tensor([0.10, 0.30, 0.05, 0.20, 0.0, 0.15, 0.10, 0.10], dtype=torch.float64)


def chi_square(tokens: Tensor | np.ndarray, expected_p: Tensor | np.ndarray) -> tuple[float, float]:
    """Chi-square statistic and p-value of token counts against a distribution (tokens of zero
    expected probability must not occur; they are left out of the test)."""
    p = np.asarray(expected_p, dtype=np.float64)
    counts = np.bincount(np.asarray(tokens), minlength=p.size).astype(np.float64)
    support = p > 0
    assert counts[~support].sum() == 0, f"tokens of zero probability drawn: {counts}"
    expected = p[support] / p[support].sum() * counts.sum()
    result = stats.chisquare(counts[support], expected)
    return float(result.statistic), float(result.pvalue)


class _BigramState:
    def __init__(self, tokens: list[int], logits: Tensor) -> None:
        self.tokens = tokens
        self._logits = logits

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def last_logits(self) -> Tensor:
        return self._logits


class BigramModel:
    """A `LanguageModel` whose next-token logits depend on the last token only (a seeded
    random table, sharpened by ``scale``); ``calls`` counts forward passes."""

    def __init__(
        self, vocab: int = 12, seed: int = 0, scale: float = 2.0, context: int = 16
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.table = scale * torch.randn(vocab, vocab, generator=generator)
        self.name = f"bigram{seed}"
        self.vocab_size = vocab
        self.context_tokens = context
        self.parameter_count = vocab * vocab
        self.calls = 0

    def logits(self, tokens: Tensor) -> Tensor:
        assert tokens.ndim == 2 and tokens.shape[1] <= self.context_tokens
        self.calls += 1
        return self.table[tokens.long()]

    def start(self, prompt: Sequence[int]) -> _BigramState:
        assert prompt
        return _BigramState(list(prompt), self.table[prompt[-1]])

    def extend(self, states: Sequence[_BigramState], tokens: Sequence[Sequence[int]]) -> Tensor:
        assert len(states) == len(tokens)
        self.calls += 1
        for state, new in zip(states, tokens, strict=True):
            if new:
                state.tokens.extend(new)
                state._logits = self.table[new[-1]]
        return torch.stack([s.last_logits for s in states])
