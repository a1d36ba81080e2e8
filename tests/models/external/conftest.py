"""Tiny random models saved in each format a user can bring, and a guard against network use."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch


def _save_pretrained(model: Any, directory: Path) -> Path:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer random BERT saved by ``save_pretrained``."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        vocab_size=16,
    )  # fmt: skip
    return _save_pretrained(BertModel(config), tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer random Llama (decoder, rotary positions) saved by ``save_pretrained``."""
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(2)
    config = LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=64, vocab_size=16, max_position_embeddings=64,
    )  # fmt: skip
    return _save_pretrained(LlamaModel(config), tmp_path_factory.mktemp("llama"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every socket connection and name lookup fails the test; returns what was attempted."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise AssertionError(f"network access attempted: {args[:2]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts
