"""Payload codecs: exact round trips of q_sent, sizes equal to the encoded lengths, truncation
and quantization by hand, and clear errors for malformed or hostile payloads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylarge.config.hybrid_lm_config import TruncationSpec
from tinylarge.integrate.hybrid_lm.payload import (
    DistributionCodec,
    full_payload_bytes,
    id_bits,
    truncated_payload_bytes,
)
from tinylarge.integrate.hybrid_lm.speculative import probabilities

CODECS = [
    DistributionCodec.full(),
    DistributionCodec.truncated(top_k=16, bits=8),
    DistributionCodec.truncated(top_k=3, bits=2),
    DistributionCodec.truncated(top_p=0.9, bits=12),
    DistributionCodec.truncated(top_k=2000, bits=16),
]


def _distributions(vocab: int, rows: int = 40, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-1, 1.5, rows).unsqueeze(1)  # flat to very peaked
    return probabilities(scales * torch.randn(rows, vocab, generator=generator), 1.0)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.label)
@pytest.mark.parametrize("vocab", [1, 2, 37, 1024, 70_000])
def test_round_trip_is_exact_and_sizes_match(codec: DistributionCodec, vocab: int) -> None:
    rows = 6 if vocab > 10_000 else 40
    q = _distributions(vocab, rows)
    q_sent = codec.prepare(q)
    assert torch.equal(codec.prepare(q_sent), q_sent) or codec.top_p is not None
    kept = codec.kept_counts(q_sent).numpy()
    sizes = codec.payload_sizes(kept, vocab)
    for i in range(rows):
        payload = codec.encode(q_sent[i])
        assert torch.equal(codec.decode(payload, vocab), q_sent[i])
        assert len(payload) == sizes[i] == codec.payload_bytes(vocab, int(kept[i]))
        assert q_sent[i, q[i].argmax()] == q_sent[i].max()  # the most probable stays on top
    assert torch.allclose(q_sent.sum(1), torch.ones(rows, dtype=torch.float64))
    assert torch.equal(codec.decode_many([codec.encode(r) for r in q_sent[:3]], vocab), q_sent[:3])


def test_full_fp16_is_close_to_q() -> None:
    q = _distributions(1024)
    q_sent = DistributionCodec.full().prepare(q)
    relative = (q_sent - q).abs() / q.max(dim=1, keepdim=True).values
    assert float(relative.max()) < 2e-3
    assert full_payload_bytes(1024) == 2048 == DistributionCodec.full().payload_bytes(1024)


def test_truncation_and_quantization_by_hand() -> None:
    q = torch.tensor([0.05, 0.40, 0.10, 0.30, 0.15], dtype=torch.float64)
    codec = DistributionCodec.truncated(top_k=3, bits=3)  # L = 7
    # Kept: tokens 1, 3, 4 with q / q_max = 1, 0.75, 0.375 -> codes 7, round(5.25) = 5,
    # round(2.625) = 3; q_sent = (7, 5, 3) / 15.
    expected = torch.tensor([0, 7, 0, 5, 3], dtype=torch.float64) / 15
    assert torch.equal(codec.prepare(q), expected)
    # Payload: id bits b = 3; count-1 = 2 -> 010; then (001,111) (011,101) (100,011);
    # 3 + 3 * 6 = 21 bits -> 3 bytes.
    bits = "010" + "001111" + "011101" + "100011" + "000"
    assert codec.encode(expected) == int(bits, 2).to_bytes(3, "big")
    assert truncated_payload_bytes(3, 5, 3) == 3 == codec.payload_bytes(5)
    # A tiny probability still gets code 1 (every kept token stays possible).
    tiny = torch.tensor([0.999, 0.001, 0.0], dtype=torch.float64)
    assert torch.equal(codec.prepare(tiny), torch.tensor([7.0, 1.0, 0.0], dtype=torch.float64) / 8)


def test_top_p_keeps_the_fewest_tokens_reaching_the_mass() -> None:
    q = torch.tensor([0.05, 0.40, 0.10, 0.30, 0.15], dtype=torch.float64)
    assert int((DistributionCodec.truncated(top_p=0.69).prepare(q) > 0).sum()) == 2
    assert int((DistributionCodec.truncated(top_p=0.71).prepare(q) > 0).sum()) == 3
    assert int((DistributionCodec.truncated(top_p=1.0).prepare(q) > 0).sum()) == 5
    with pytest.raises(ValueError, match="pass kept"):
        DistributionCodec.truncated(top_p=0.5).payload_bytes(5)


def test_sizes_and_spec() -> None:
    assert [id_bits(v) for v in (1, 2, 3, 1024, 1025, 70_000)] == [1, 1, 2, 10, 11, 17]
    assert truncated_payload_bytes(16, 1024, 8) == math.ceil((10 + 16 * 18) / 8) == 38
    codec = DistributionCodec.from_spec(TruncationSpec(top_k=8, top_p=None, bits=4))
    assert codec == DistributionCodec.truncated(top_k=8, bits=4)
    assert codec.label == "top-8, 4 bits" and DistributionCodec.full().label == "full fp16"


def test_encode_refuses_a_distribution_it_does_not_carry() -> None:
    q = _distributions(64, rows=1)[0]
    with pytest.raises(ValueError, match="prepare"):
        DistributionCodec.full().encode(q)
    with pytest.raises(ValueError, match="more than top_k"):
        DistributionCodec.truncated(top_k=4).encode(q)
    off_grid = DistributionCodec.truncated(top_k=4).prepare(q)
    off_grid[off_grid > 0] += torch.tensor([1e-3, 0, 0, 0], dtype=torch.float64)
    with pytest.raises(ValueError, match="prepare"):
        DistributionCodec.truncated(top_k=4).encode(off_grid / off_grid.sum())


def _fp16(values: list[float]) -> bytes:
    return np.array(values, dtype="<f2").tobytes()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_fp16([1.0, 0.5]), "has 6 bytes"),
        (_fp16([1.0, 0.5, -0.25]), "non-negative"),
        (_fp16([1.0, 0.5, -0.0]), "non-negative"),
        (_fp16([1.0, np.nan, 0.0]), "finite"),
        (_fp16([0.5, 0.5, 0.25]), "largest value must be 1"),
        (_fp16([0.0, 0.0, 0.0]), "largest value must be 1"),
    ],
)
def test_malformed_full_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DistributionCodec.full().decode(payload, 3)


def _truncated(fields: list[tuple[int, int]], pad: str = "") -> bytes:
    bits = "".join(format(value, f"0{width}b") for value, width in fields) + pad
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # V = 5 (3-bit ids), bits = 3 (L = 7), top_k = 3.
        (b"", "at least 1 byte"),
        (_truncated([(3, 3)]), "at most 3 tokens"),
        (_truncated([(2, 3), (1, 3), (7, 3)]), "has 3 bytes, got 2"),
        (_truncated([(0, 3), (5, 3), (7, 3)]), "increasing and lie in 0..4"),
        (_truncated([(1, 3), (3, 3), (7, 3), (1, 3), (5, 3)]), "increasing"),
        (_truncated([(1, 3), (1, 3), (0, 3), (3, 3), (7, 3)]), "codes must lie in 1..7"),
        (_truncated([(1, 3), (1, 3), (6, 3), (3, 3), (5, 3)]), "largest equal to it"),
        (_truncated([(0, 3), (1, 3), (7, 3)], pad="1"), "padding"),
        (_truncated([(0, 3), (1, 3), (7, 3)]) + b"\x00", "has 2 bytes, got 3"),
    ],
)
def test_malformed_truncated_payloads(payload: bytes, message: str) -> None:
    codec = DistributionCodec.truncated(top_k=3, bits=3)
    with pytest.raises(ValueError, match=message):
        codec.decode(payload, 5)


def test_bad_codec_settings() -> None:
    with pytest.raises(ValueError, match="bits"):
        DistributionCodec.truncated(bits=1)
    with pytest.raises(ValueError, match="top_p"):
        DistributionCodec.truncated(top_p=1.5)
    with pytest.raises(ValueError, match="kind"):
        DistributionCodec("zstd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive mass"):
        DistributionCodec.full().prepare(torch.zeros(1, 4))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64), which=st.sampled_from(CODECS[:4]))
def test_hostile_payloads_raise_value_error_or_round_trip(
    payload: bytes, which: DistributionCodec
) -> None:
    vocab = 20
    try:
        q_sent = which.decode(payload, vocab)
    except ValueError:
        return
    assert which.encode(q_sent) == payload
