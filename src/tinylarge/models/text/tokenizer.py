"""Byte-level BPE tokenizer (the `tokenizers` library) shared by the draft and target LMs.

Byte-level BPE (Radford et al. 2019, GPT-2; Sennrich et al., ACL 2016) starts from the 256 byte
symbols, so any UTF-8 text encodes without unknown tokens and ``decode(encode(text)) == text``.
The one special token ``<|endoftext|>`` ends every document.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

#: The end-of-document token.
EOS_TOKEN = "<|endoftext|>"


class BpeTokenizer:
    """A byte-level BPE `tokenizers.Tokenizer` with ``encode``/``decode`` and the EOS id.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        Must know `EOS_TOKEN`.
    """

    def __init__(self, tokenizer: object) -> None:
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"expected a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        eos = tokenizer.token_to_id(EOS_TOKEN)
        if eos is None:
            raise ValueError(f"the tokenizer has no {EOS_TOKEN!r} token")
        self.tokenizer = tokenizer
        self.eos_id: int = int(eos)

    @property
    def vocab_size(self) -> int:
        """Number of token ids (including the special token)."""
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no EOS appended)."""
        return list(self.tokenizer.encode(text).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (parallel in the Rust library)."""
        return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (the EOS token decodes to nothing)."""
        return str(self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True))

    def to_json(self) -> str:
        """The tokenizer as the `tokenizers` JSON document."""
        return str(self.tokenizer.to_str())

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as one JSON file (``tokenizer.json``)."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BpeTokenizer:
        """Read a tokenizer JSON file; ``ValueError`` when it is missing or not a tokenizer."""
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"tokenizer file {str(path)!r} does not exist")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as error:  # the Rust library raises plain Exception
            raise ValueError(f"{str(path)!r} is not a tokenizers JSON file: {error}") from None


def train_bpe(documents: Sequence[str], vocab_size: int = 1024) -> BpeTokenizer:
    """Train a byte-level BPE tokenizer on ``documents``.

    Parameters
    ----------
    documents : sequence of str
    vocab_size : int
        Tokens in the vocabulary, 257..65,536 (256 bytes + EOS + merges); on the default corpus
        1,024 gives about 2.65 bytes per token.

    Notes
    -----
    Training is deterministic: the same documents give the same JSON.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not 257 <= vocab_size <= 65_536:
        raise ValueError(f"vocab_size must lie in 257..65536 (256 bytes + EOS), got {vocab_size}")
    if not documents:
        raise ValueError("need at least one document to train a tokenizer")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[EOS_TOKEN],
    )  # fmt: skip
    tokenizer.train_from_iterator(list(documents), trainer=trainer)
    return BpeTokenizer(tokenizer)


def encode_documents(tokenizer: BpeTokenizer, documents: Sequence[str]) -> NDArray[np.int32]:
    """All documents as one token stream, each document followed by the EOS id, int32."""
    parts = [np.asarray([*ids, tokenizer.eos_id], dtype=np.int32)
             for ids in tokenizer.encode_batch(documents)]  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
