"""A Hugging Face causal language model (a local ``save_pretrained`` directory) as a
`LanguageModel`.

Only local files are read (``local_files_only=True``): a spec that is not a directory is
refused before ``transformers`` is imported (see `tinylarge.models.text.checkpoints`), so a Hub
id never triggers a download or network retries. The draft and target must share one
vocabulary (`check_same_vocabulary`).

Each `HfDecodeState` keeps its own ``transformers`` cache. `HfLanguageModel.extend` batches
the states with new tokens into one forward pass when every cache is a plain ``DynamicCache``
holding exactly the state's window (the usual case: Llama, Qwen, GPT-2, ...): the caches are
right-padded to a common length and masked with a 2-D attention mask, and each new token gets
its true position through ``position_ids``. Other caches (sliding-window or hybrid layers) fall
back to one forward per state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tinylarge.models.text.language_model import (
    DecodeState,
    WindowState,
    check_token_batches,
    prompt_window,
    reprimed,
)

#: Context used when the model's config names no ``max_position_embeddings``.
DEFAULT_CONTEXT = 2048


def _require_dir(directory: str | Path) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(
            f"{str(path)!r} is not a directory; give a Hugging Face model saved with "
            "save_pretrained (nothing is downloaded)"
        )
    return path


#: A sequence being decoded by an `HfLanguageModel` (its cache is a ``transformers`` cache).
HfDecodeState = WindowState[Any]


class HfLanguageModel:
    """A ``transformers`` causal LM (CPU, eval mode) behind the `LanguageModel` interface.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (``AutoModelForCausalLM``).
    name : str
    context_tokens : int, optional
        Default: the config's ``max_position_embeddings`` (else `DEFAULT_CONTEXT`).
    """

    def __init__(self, model: Any, name: str, context_tokens: int | None = None) -> None:
        self.model = model.eval()
        self.name = name
        config = model.config
        self.vocab_size = int(config.vocab_size)
        self.context_tokens = int(
            context_tokens or getattr(config, "max_position_embeddings", None) or DEFAULT_CONTEXT
        )
        self.parameter_count = sum(p.numel() for p in model.parameters())

    def logits(self, tokens: Tensor) -> Tensor:
        """Teacher forcing: (B, T) int64 -> (B, T, V) float32; T <= `context_tokens`."""
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.context_tokens:
            raise ValueError(
                f"tokens must have shape (batch, 1..{self.context_tokens}), got "
                f"{tuple(tokens.shape)}"
            )
        with torch.inference_mode():
            logits: Tensor = self.model(input_ids=tokens.long(), use_cache=False).logits
            return logits.float()

    def _prime(self, window: list[int]) -> tuple[Any, Tensor]:
        output = self.model(input_ids=torch.tensor([window]), use_cache=True)
        return output["cache"] if "cache" in output else output["past_key_values"], (
            output.logits[0, -1].float().clone()
        )

    def start(self, prompt: Sequence[int]) -> HfDecodeState:
        """A state primed on ``prompt`` (non-empty; longer than the context: its last
        ``context_tokens // 2`` tokens)."""
        tokens, window = prompt_window(prompt, self.vocab_size, self.context_tokens)
        with torch.inference_mode():
            cache, last = self._prime(window)
        return HfDecodeState(self, window, cache, last, len(tokens))

    def extend(self, states: Sequence[DecodeState], tokens: Sequence[Sequence[int]]) -> Tensor:
        """Append ``tokens[i]`` to ``states[i]``; (len(states), V) float32 logits after each
        state's last token (see `LanguageModel.extend`)."""
        lists = check_token_batches(states, tokens, self.vocab_size)
        ours = [s for s in states if isinstance(s, WindowState) and s.owner is self]
        if len(ours) != len(states):
            raise ValueError(f"every state must come from this model's start() ({self.name})")
        if len({id(s) for s in ours}) != len(ours):
            raise ValueError("a state appears twice in one extend() call")
        with torch.inference_mode():
            stepped = []
            for state, row in zip(ours, lists, strict=True):
                if row and len(state.window) + len(row) > self.context_tokens:
                    state.window = reprimed(state.window + row, self.context_tokens)
                    state.cache, state._last_logits = self._prime(state.window)
                elif row:
                    stepped.append((state, row))
            if len(stepped) > 1 and all(_plain_cache(s.cache, len(s.window)) for s, _ in stepped):
                _batched_step(self.model, [s for s, _ in stepped], [r for _, r in stepped])
            else:
                for state, row in stepped:
                    output = self.model(input_ids=torch.tensor([row]), cache=state.cache,
                                        use_cache=True)  # fmt: skip
                    state.window = state.window + row
                    state._last_logits = output.logits[0, -1].float().clone()
        for state, row in zip(ours, lists, strict=True):
            state._length += len(row)
        if not ours:
            return torch.zeros(0, self.vocab_size)
        return torch.stack([s.last_logits for s in ours])


def _plain_cache(cache: Any, length: int) -> bool:
    """Whether ``cache`` is a ``DynamicCache`` whose every layer holds ``length`` positions of
    one sequence (so it can be padded into a batch)."""
    from transformers import DynamicCache

    if type(cache) is not DynamicCache:
        return False
    layers = getattr(cache, "layers", [])
    return bool(layers) and all(
        getattr(layer, "keys", None) is not None and layer.keys.shape[0] == 1
        and layer.keys.shape[-2] == length for layer in layers
    )  # fmt: skip


def _padded_cache(states: list[HfDecodeState], past: int) -> Any:
    """One ``DynamicCache`` of the states' caches, right-padded with zeros to ``past``."""
    from transformers import DynamicCache

    data = []
    for index in range(len(states[0].cache.layers)):
        first = states[0].cache.layers[index].keys
        keys = first.new_zeros(len(states), first.shape[1], past, first.shape[3])
        first_values = states[0].cache.layers[index].values
        values = first_values.new_zeros(len(states), first_values.shape[1], past,
                                        first_values.shape[3])  # fmt: skip
        for row, state in enumerate(states):
            layer = state.cache.layers[index]
            keys[row, :, : len(state.window)] = layer.keys[0]
            values[row, :, : len(state.window)] = layer.values[0]
        data.append((keys, values))
    return DynamicCache(ddp_cache_data=data)


def _batched_step(model: Any, states: list[HfDecodeState], rows: list[list[int]]) -> None:
    """New tokens of several states in one forward (caches padded and masked, positions
    explicit); each state keeps its own cache of its real positions."""
    from transformers import DynamicCache

    past, new = max(len(s.window) for s in states), max(len(r) for r in rows)
    input_ids = torch.zeros(len(states), new, dtype=torch.long)
    positions = torch.zeros(len(states), new, dtype=torch.long)
    mask = torch.zeros(len(states), past + new, dtype=torch.long)
    for i, (state, row) in enumerate(zip(states, rows, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        positions[i] = len(state.window) + torch.arange(new)
        mask[i, : len(state.window)] = 1
        mask[i, past : past + len(row)] = 1
    output = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   cache=_padded_cache(states, past), use_cache=True)  # fmt: skip
    cache = output["cache"] if "cache" in output else output["past_key_values"]
    for i, (state, row) in enumerate(zip(states, rows, strict=True)):
        keep = list(range(len(state.window))) + list(range(past, past + len(row)))
        data = [(layer.keys[i : i + 1, :, keep], layer.values[i : i + 1, :, keep])
                for layer in cache.layers]  # fmt: skip
        state.cache = DynamicCache(ddp_cache_data=data)
        state.window = state.window + row
        state._last_logits = output.logits[i, len(row) - 1].float().clone()


def load_hf_causal_lm(directory: str | Path) -> HfLanguageModel:
    """``AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)`` as an
    `HfLanguageModel` (float32, CPU); ``ValueError`` when it is not a directory or
    ``transformers`` cannot load it."""
    path = _require_dir(directory)
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                     dtype=torch.float32)  # fmt: skip
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{str(path)!r} is neither a tinylarge LM checkpoint nor a Hugging Face causal LM "
            f"that transformers can load: {error}"
        ) from None
    return HfLanguageModel(model, path.name)


class HfTokenizer:
    """A ``transformers`` tokenizer with ``encode``/``decode``/``vocab_size``/``eos_id``."""

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the Hugging Face tokenizer defines no end-of-text (eos) token")
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_id = int(tokenizer.eos_token_id)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def load_hf_tokenizer(directory: str | Path) -> HfTokenizer:
    """``AutoTokenizer.from_pretrained(directory, local_files_only=True)`` wrapped."""
    path = _require_dir(directory)
    from transformers import AutoTokenizer

    try:
        return HfTokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{str(path)!r} holds no tokenizer transformers can load: {error}"
        ) from None
