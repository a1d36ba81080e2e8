"""Greedy arena planner: hand-computed layouts, in-place rules, invariants on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylarge.tiny.graph import Op, TensorSpec, TinyModel
from tinylarge.tiny.memory_plan import (
    BufferRequest,
    greedy_offsets,
    plan_memory,
    tensor_lifetimes,
)


def _spec(*shape: int) -> TensorSpec:
    return TensorSpec(shape, 0.05, -128)


def _weighted(name: str, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {
        f"{name}.weight": np.ones(shape, np.int8),
        f"{name}.bias": np.zeros(shape[0], np.int32),
        f"{name}.weight_scale": np.full(shape[0], 0.01, np.float32),
    }


def residual_model() -> TinyModel:
    """x (1,8,8) -conv-> a -relu-> b -conv-> c; add(b, c) -> d -pool-> e -flatten-> f -fc-> g."""
    conv_attrs = {"stride": (1, 1), "padding": (1, 1), "groups": 1, "relu": False}
    ops = (
        Op("c1", "conv", ("x",), "a", conv_attrs),
        Op("r1", "relu", ("a",), "b"),
        Op("c2", "conv", ("b",), "c", conv_attrs),
        Op("add", "add", ("b", "c"), "d", {"relu": False}),
        Op("pool", "max_pool", ("d",), "e", {"kernel": (2, 2), "stride": (2, 2)}),
        Op("flat", "flatten", ("e",), "f"),
        Op("fc", "linear", ("f",), "g", {"relu": False}),
    )
    tensors = {
        "x": _spec(1, 8, 8),
        "a": _spec(4, 8, 8),
        "b": _spec(4, 8, 8),
        "c": _spec(4, 8, 8),
        "d": _spec(4, 8, 8),
        "e": _spec(4, 4, 4),
        "f": _spec(64),
        "g": _spec(10),
    }
    constants = {
        **_weighted("c1", (4, 1, 3, 3)),
        **_weighted("c2", (4, 4, 3, 3)),
        **_weighted("fc", (10, 64)),
    }
    return TinyModel(
        ops, tensors, constants, "x", "g", tuple(str(i) for i in range(10)), {"format_version": 1}
    )


def test_hand_computed_greedy_layout() -> None:
    # Five buffers, alignment 1. Lifetimes are inclusive op indices.
    #   X  10 B  [0, 1]
    #   Y 100 B  [1, 2]
    #   Z  50 B  [2, 3]
    #   W  40 B  [3, 4]
    #   V  20 B  [0, 4]   (a long-lived skip connection)
    # Largest first: Y, Z, W, V, X.
    #   Y -> 0                         [0, 100)
    #   Z overlaps Y          -> 100   [100, 150)
    #   W overlaps Z only; gap 0..100 before Z fits 40 -> 0   [0, 40)
    #   V overlaps Y, W, Z; by offset Y@0, W@0, Z@100: no gap -> 150   [150, 170)
    #   X overlaps Y and V (not Z, W); gap between Y's end (100) and V (150) is 50 >= 10 -> 100
    # Arena = 170, which equals the lower bound: live bytes at op 2 are Y + Z + V = 170.
    # (Placing in first-use order X, V, Y, Z, W instead gives X@0, V@10, Y@30, Z@130, W@30 and a
    # 180 B arena: the largest-first order matters.)
    requests = [
        BufferRequest("X", 10, 0, 1),
        BufferRequest("Y", 100, 1, 2),
        BufferRequest("Z", 50, 2, 3),
        BufferRequest("W", 40, 3, 4),
        BufferRequest("V", 20, 0, 4),
    ]
    offsets = greedy_offsets(requests, alignment=1)
    assert offsets == (100, 0, 100, 0, 150)
    assert max(o + r.size_bytes for o, r in zip(offsets, requests, strict=True)) == 170


def test_alignment_rounds_sizes_and_offsets() -> None:
    # 10 B and 20 B, both live at op 0; with 16-byte alignment they take 16 and 32 B.
    # Largest (32) first at 0, then the 16 at 32.
    requests = [BufferRequest("a", 10, 0, 0), BufferRequest("b", 20, 0, 0)]
    assert greedy_offsets(requests, alignment=16) == (32, 0)
    assert greedy_offsets(requests, alignment=1) == (20, 0)


def test_ties_go_to_earlier_first_use() -> None:
    # Equal sizes: the one used first is placed first (at 0).
    requests = [BufferRequest("late", 8, 1, 2), BufferRequest("early", 8, 0, 1)]
    assert greedy_offsets(requests) == (8, 0)


def test_lifetimes_of_residual_model() -> None:
    assert tensor_lifetimes(residual_model()) == {
        "x": (0, 0),  # input from op 0, last read by c1
        "a": (0, 1),
        "b": (1, 3),  # read by c2 and add
        "c": (2, 3),
        "d": (3, 4),
        "e": (4, 5),
        "f": (5, 6),
        "g": (6, 6),  # model output: to the last op
    }


def test_hand_computed_model_plan_in_place() -> None:
    # alignment 16. Buffers after merging:
    #   {a, b, d}: relu writes b over a (a's last use is r1); add writes d over b (b's last use
    #              is add, first input) -> 256 B, [0, 4]
    #   c 256 B [2, 3];  x 64 B [0, 0];  {e, f} (flatten alias) 64 B [4, 6];  g 10 -> 16 B [6, 6]
    # Largest first (ties by first use): abd, c, x, ef, g
    #   abd -> 0;  c overlaps abd -> 256;  x overlaps abd only -> 256 (c is not live at op 0)
    #   ef overlaps abd (op 4) only -> 256;  g overlaps ef only, gap 0..256 -> 0
    # Arena = 512.
    plan = plan_memory(residual_model(), alignment=16)
    assert plan.arena_bytes == 512
    layout = {
        b.name: (b.tensors, b.aligned_bytes, b.first_op, b.last_op, b.offset) for b in plan.buffers
    }
    assert layout == {
        "a": (("a", "b", "d"), 256, 0, 4, 0),
        "c": (("c",), 256, 2, 3, 256),
        "x": (("x",), 64, 0, 0, 256),
        "e": (("e", "f"), 64, 4, 6, 256),
        "g": (("g",), 16, 6, 6, 0),
    }
    assert plan.offset_of("d") == 0
    assert plan.buffer_of("g").size_bytes == 10


def test_hand_computed_model_plan_without_in_place() -> None:
    # a [0,1], b [1,3], c [2,3], d [3,4] all 256 B; x 64 [0,0]; ef 64 [4,6]; g 16 [6,6].
    #   a -> 0;  b overlaps a -> 256;  c overlaps b only, gap 0..256 -> 0
    #   d overlaps b, c: c@0, b@256 -> 512;  x overlaps a -> 256;  ef overlaps d only -> 0
    #   g overlaps ef -> 64.  Arena = 768 (in place saves 256 B).
    plan = plan_memory(residual_model(), alignment=16, in_place=False)
    assert {b.name: b.offset for b in plan.buffers} == {
        "a": 0, "b": 256, "c": 0, "d": 512, "x": 256, "e": 0, "g": 64,
    }  # fmt: skip
    assert plan.arena_bytes == 768


def test_relu_does_not_overwrite_model_input_or_live_tensor() -> None:
    # op 0: r = relu(x)   -- x is the model input: r gets its own buffer
    # op 1: r2 = relu(r)   -- the add reads r later: r2 gets its own buffer
    # op 2: s = add(r, r2) -- r's last use: s overwrites r
    # Lifetimes: x [0, 0], {r, s} [0, 2], r2 [1, 2]; 16 B each.
    ops = (
        Op("r", "relu", ("x",), "r"),
        Op("r2", "relu", ("r",), "r2"),
        Op("s", "add", ("r", "r2"), "s", {"relu": False}),
    )
    tensors = {n: _spec(16) for n in ("x", "r", "r2", "s")}
    model = TinyModel(ops, tensors, {}, "x", "s", tuple("abcdefghijklmnop"), {})
    plan = plan_memory(model, alignment=1)
    groups = sorted(b.tensors for b in plan.buffers)
    assert groups == [("r", "s"), ("r2",), ("x",)]
    # x -> 0; {r, s} overlaps x -> 16; r2 overlaps only {r, s} -> 0 (x is dead after op 0).
    assert {b.name: b.offset for b in plan.buffers} == {"x": 0, "r": 16, "r2": 0}
    assert plan.arena_bytes == 32


def test_scratch_buffers_live_during_one_op() -> None:
    plan = plan_memory(residual_model(), alignment=16, scratch_bytes={"c2": 100, "c1": 0})
    scratch = plan.buffer_of("scratch:c2")
    assert (scratch.first_op, scratch.last_op, scratch.aligned_bytes) == (2, 2, 112)
    assert "scratch:c1" not in {b.name for b in plan.buffers}  # zero-size: not planned
    with pytest.raises(ValueError, match="unknown op 'nope'"):
        plan_memory(residual_model(), scratch_bytes={"nope": 4})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alignment must be a positive integer"):
        plan_memory(residual_model(), alignment=0)
    with pytest.raises(ValueError, match="first_op <= last_op"):
        greedy_offsets([BufferRequest("a", 4, 3, 1)])
    with pytest.raises(KeyError, match="no buffer holds"):
        plan_memory(residual_model()).buffer_of("zzz")


@st.composite
def _requests(draw: st.DrawFn) -> list[BufferRequest]:
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        first = draw(st.integers(0, 8))
        last = draw(st.integers(first, 9))
        out.append(BufferRequest(f"b{i}", draw(st.integers(0, 300)), first, last))
    return out


@settings(max_examples=200, deadline=None)
@given(_requests(), st.sampled_from([1, 4, 16]))
def test_no_live_buffers_share_bytes(requests: list[BufferRequest], alignment: int) -> None:
    offsets = greedy_offsets(requests, alignment)
    size = [-(-r.size_bytes // alignment) * alignment for r in requests]
    for i, a in enumerate(requests):
        assert offsets[i] % alignment == 0
        for j in range(i + 1, len(requests)):
            if a.overlaps(requests[j]) and size[i] and size[j]:
                disjoint = offsets[i] + size[i] <= offsets[j] or offsets[j] + size[j] <= offsets[i]
                assert disjoint, (a, requests[j], offsets[i], offsets[j])
    arena = max(o + s for o, s in zip(offsets, size, strict=True))
    live_peak = max(
        sum(s for r, s in zip(requests, size, strict=True) if r.first_op <= t <= r.last_op)
        for t in range(10)
    )
    assert live_peak <= arena <= sum(size)
