"""Update compression: decoded values and bytes on air, on hand examples."""

from __future__ import annotations

import pytest
import torch

from tinylarge.integrate.colearning.update_compression import (
    index_bytes,
    make_compressor,
    state_bytes,
    topk_payload_bytes,
)


def delta() -> dict[str, torch.Tensor]:
    return {
        "w": torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]),  # 2 clients x 4
        "steps": torch.tensor([3, 3]),
    }


def test_none_sends_float32_and_keeps_values() -> None:
    out, size = make_compressor("none").compress(delta())
    assert size.tolist() == [16, 16]
    torch.testing.assert_close(out["w"], delta()["w"])
    assert torch.equal(out["steps"], delta()["steps"])  # integer buffers pass, 0 bytes


def test_int8_quantizes_per_client_and_tensor() -> None:
    out, size = make_compressor("int8").compress(delta())
    assert size.tolist() == [4 + 4, 4 + 4]  # 4 int8 values + a float32 scale
    scale = 2.0 / 127
    expected = torch.round(torch.tensor([1.0, -2.0, 0.5, 0.0]) / scale) * scale
    torch.testing.assert_close(out["w"][0], expected)
    assert torch.equal(out["w"][1], torch.zeros(4))  # an all-zero update stays zero


def test_topk_keeps_the_largest_magnitudes() -> None:
    out, size = make_compressor("topk", topk_fraction=0.5).compress(delta())
    torch.testing.assert_close(out["w"][0], torch.tensor([1.0, -2.0, 0.0, 0.0]))
    # 2 values x 4 B + positions: bitmap ceil(4/8) = 1 B beats 2 x 1-B indices
    assert size.tolist() == [9, 9]


def test_topk_position_cost_picks_the_cheaper_encoding() -> None:
    assert index_bytes(256) == 1 and index_bytes(257) == 2 and index_bytes(70_000) == 4
    assert topk_payload_bytes(1000, 10) == 10 * 4 + 10 * 2  # indices: 20 B < bitmap 125 B
    assert topk_payload_bytes(1000, 500) == 500 * 4 + 125  # bitmap
    assert state_bytes(delta()) == 4 * 8


def test_unknown_or_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown update compression 'zip'"):
        make_compressor("zip")
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\]"):
        make_compressor("topk", topk_fraction=0.0)
