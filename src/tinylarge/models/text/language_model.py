"""The language-model interface of the hybrid schemes, and our transformer behind it.

A `LanguageModel` scores whole windows (teacher forcing, `LanguageModel.logits`) and decodes
many sequences at once: `LanguageModel.start` primes a `DecodeState` (its KV cache) on a prompt
and `LanguageModel.extend` appends tokens to several states in one batched forward pass, which
is how an edge server verifies the drafts of many devices together. When a sequence would
outgrow the context it is re-primed on its last ``context_tokens // 2`` tokens (a sliding
window), so decoding never stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from tinylarge.models.text.causal_transformer import (
    LM_SIZES,
    CausalTransformer,
    LayerCache,
    LmArchitecture,
    lm_architecture,
    macs_per_token,
)

__all__ = [
    "LM_SIZES",
    "CausalTransformer",
    "DecodeState",
    "LanguageModel",
    "LmArchitecture",
    "OurLanguageModel",
    "check_token_batches",
    "lm_architecture",
    "macs_per_token",
]


@runtime_checkable
class DecodeState(Protocol):
    """One sequence being decoded (opaque; holds its KV cache)."""

    @property
    def length(self) -> int:
        """Tokens consumed so far (prompt and every extension)."""
        ...

    @property
    def last_logits(self) -> Tensor:
        """(V,) float32 next-token logits after the last token."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """A causal language model as the hybrid schemes use it."""

    name: str
    vocab_size: int
    context_tokens: int
    parameter_count: int

    def logits(self, tokens: Tensor) -> Tensor:
        """Teacher forcing: (B, T) int64 -> (B, T, V) float32, no grad; T <= context_tokens."""
        ...

    def start(self, prompt: Sequence[int]) -> DecodeState:
        """A state primed on a non-empty prompt."""
        ...

    def extend(self, states: Sequence[DecodeState], tokens: Sequence[Sequence[int]]) -> Tensor:
        """Append ``tokens[i]`` to ``states[i]`` in one batched forward; (len(states), V)
        float32 logits after each state's last token (unchanged for an empty ``tokens[i]``)."""
        ...


def check_token_batches(
    states: Sequence[object], tokens: Sequence[Sequence[int]], vocab_size: int
) -> list[list[int]]:
    """``tokens`` as lists of ints; ``ValueError`` when the counts differ or an id is not in
    ``0 .. vocab_size - 1``."""
    if len(states) != len(tokens):
        raise ValueError(f"got {len(states)} state(s) but {len(tokens)} token list(s)")
    lists = [[int(t) for t in row] for row in tokens]
    for row in lists:
        bad = [t for t in row if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary 0..{vocab_size - 1}")
    return lists


def reprimed(tokens: list[int], context_tokens: int) -> list[int]:
    """The window a sliding-window state keeps when ``tokens`` outgrow the context: the last
    ``context_tokens // 2`` of them."""
    return tokens[-(context_tokens // 2) :]


def prompt_window(
    prompt: Sequence[int], vocab_size: int, context_tokens: int
) -> tuple[list[int], list[int]]:
    """A checked prompt (non-empty, ids in the vocabulary) and the window a new state primes
    on: the whole prompt, or `reprimed` when it is longer than the context."""
    (tokens,) = check_token_batches([None], [prompt], vocab_size)
    if not tokens:
        raise ValueError("the prompt must hold at least one token")
    window = tokens if len(tokens) <= context_tokens else reprimed(tokens, context_tokens)
    return tokens, window


CacheT = TypeVar("CacheT")


class WindowState(Generic[CacheT]):
    """A `DecodeState` of a model with a sliding window (`OurLanguageModel`,
    `tinylarge.models.text.hf_causal.HfLanguageModel`): the model that owns it, the window of
    tokens its cache covers, the cache itself (the model's own type), the logits after the last
    token and the tokens consumed."""

    def __init__(self, owner: object, window: list[int], cache: CacheT, last_logits: Tensor,
                 length: int) -> None:  # fmt: skip
        self.owner = owner
        self.window = window
        self.cache = cache
        self._last_logits = last_logits
        self._length = length

    @property
    def length(self) -> int:
        return self._length

    @property
    def last_logits(self) -> Tensor:
        return self._last_logits


_OurState = WindowState[list[LayerCache]]


class OurLanguageModel:
    """A `CausalTransformer` as a `LanguageModel` (CPU, float32, inference only).

    Parameters
    ----------
    model : CausalTransformer
    name : str
        Shown in reports (e.g. the checkpoint directory's name).
    """

    def __init__(self, model: CausalTransformer, name: str = "causal_lm") -> None:
        self.model = model.eval()
        self.name = name
        self.vocab_size = model.architecture.vocab_size
        self.context_tokens = model.architecture.context
        self.parameter_count = sum(p.numel() for p in model.parameters())

    @property
    def architecture(self) -> LmArchitecture:
        return self.model.architecture

    def _as_tokens(self, tokens: Tensor) -> Tensor:
        if tokens.ndim != 2 or tokens.shape[1] < 1:
            raise ValueError(f"tokens must have shape (batch, T >= 1), got {tuple(tokens.shape)}")
        if tokens.shape[1] > self.context_tokens:
            raise ValueError(
                f"{tokens.shape[1]} tokens exceed the context of {self.context_tokens} tokens"
            )
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}")
        return tokens.long()

    def logits(self, tokens: Tensor) -> Tensor:
        """Teacher forcing: (B, T) int64 -> (B, T, V) float32; T <= `context_tokens`."""
        with torch.inference_mode():
            logits: Tensor = self.model(self._as_tokens(tokens))
            return logits.float()

    def _prime(self, windows: list[list[int]]) -> list[tuple[list[LayerCache], Tensor]]:
        """Caches and last logits of fresh windows, batching windows of equal length."""
        results: dict[int, tuple[list[LayerCache], Tensor]] = {}
        for length in sorted({len(w) for w in windows}):
            rows = [i for i, w in enumerate(windows) if len(w) == length]
            batch = torch.tensor([windows[i] for i in rows], dtype=torch.long)
            logits, caches = self.model.prime(batch)
            for j, i in enumerate(rows):
                layer_caches = [(k[j].clone(), v[j].clone()) for k, v in caches]
                results[i] = (layer_caches, logits[j, -1].float().clone())
        return [results[i] for i in range(len(windows))]

    def start(self, prompt: Sequence[int]) -> _OurState:
        """A state primed on ``prompt`` (non-empty; longer than the context: its last
        ``context_tokens // 2`` tokens)."""
        tokens, window = prompt_window(prompt, self.vocab_size, self.context_tokens)
        with torch.inference_mode():
            ((cache, last),) = self._prime([window])
        return _OurState(self, window, cache, last, len(tokens))

    def _own(self, states: Sequence[DecodeState]) -> list[_OurState]:
        mine = [s for s in states if isinstance(s, WindowState) and s.owner is self]
        if len(mine) != len(states):
            raise ValueError(f"every state must come from this model's start() ({self.name})")
        return mine

    def extend(self, states: Sequence[DecodeState], tokens: Sequence[Sequence[int]]) -> Tensor:
        """Append ``tokens[i]`` to ``states[i]`` in one batched forward (see `LanguageModel`).

        Returns
        -------
        Tensor
            (len(states), V) float32 logits after each state's last token.
        """
        lists = check_token_batches(states, tokens, self.vocab_size)
        ours = self._own(states)
        if len({id(s) for s in ours}) != len(ours):
            raise ValueError("a state appears twice in one extend() call")
        full = [i for i, (s, t) in enumerate(zip(ours, lists, strict=True))
                if t and len(s.window) + len(t) > self.context_tokens]  # fmt: skip
        cached = [i for i, t in enumerate(lists) if t and i not in full]
        with torch.inference_mode():
            if full:
                windows = [reprimed(ours[i].window + lists[i], self.context_tokens) for i in full]
                for i, window, (cache, last) in zip(
                    full, windows, self._prime(windows), strict=True
                ):
                    ours[i].window, ours[i].cache, ours[i]._last_logits = window, cache, last
            if cached:
                self._step([ours[i] for i in cached], [lists[i] for i in cached])
        for state, row in zip(ours, lists, strict=True):
            state._length += len(row)
        return (
            torch.stack([s.last_logits for s in ours]) if ours else torch.zeros(0, self.vocab_size)
        )

    def _step(self, states: list[_OurState], lists: list[list[int]]) -> None:
        """One batched forward of new tokens against the states' caches (padded, masked)."""
        past_len = [len(s.window) for s in states]
        new_len = [len(t) for t in lists]
        rows, p_max, n_max = len(states), max(past_len), max(new_len)
        tokens = torch.zeros(rows, n_max, dtype=torch.long)
        positions = torch.zeros(rows, n_max, dtype=torch.long)
        mask = torch.zeros(rows, 1, n_max, p_max + n_max, dtype=torch.bool)
        causal = torch.ones(n_max, n_max, dtype=torch.bool).tril()
        for r, (p, row) in enumerate(zip(past_len, lists, strict=True)):
            tokens[r, : len(row)] = torch.tensor(row)
            positions[r] = (p + torch.arange(n_max)).clamp(max=self.context_tokens - 1)
            mask[r, 0, :, :p] = True
            mask[r, 0, :, p_max:] = causal
        past = []
        for layer in range(self.model.architecture.layers):
            k0 = states[0].cache[layer][0]
            keys = k0.new_zeros(rows, k0.shape[0], p_max, k0.shape[2])
            values = torch.zeros_like(keys)
            for r, s in enumerate(states):
                keys[r, :, : past_len[r]], values[r, :, : past_len[r]] = s.cache[layer]
            past.append((keys, values))
        logits, fresh = self.model.step(tokens, positions, past, mask)
        for r, (s, n) in enumerate(zip(states, new_len, strict=True)):
            s.cache = [(torch.cat([k, fk[r, :, :n]], dim=1), torch.cat([v, fv[r, :, :n]], dim=1))
                       for (k, v), (fk, fv) in zip(s.cache, fresh, strict=True)]  # fmt: skip
            s.window = s.window + lists[r]
            s._last_logits = logits[r, n - 1].float().clone()
