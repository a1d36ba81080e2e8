"""TFLite Micro-style greedy arena planner for a `TinyModel`'s activation tensors.

The algorithm is the one of TFLite Micro's ``GreedyMemoryPlanner``
(``tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc``):

1. every buffer has a size and a lifetime ``[first_op, last_op]`` (inclusive op indices); two
   buffers are simultaneously live unless one's ``first_op`` is after the other's ``last_op``;
2. buffers are sorted largest first (ties: earlier ``first_op`` first, then request order);
3. each buffer in turn is put at the lowest offset where it fits in a gap between the
   already-placed buffers whose lifetimes overlap its own (buffers that are never live at the
   same time may share bytes);
4. the arena is ``max(offset + size)``.

Lifetimes of a model's tensors (int8, one byte per element, one sample): a tensor lives from
the op that writes it (the model input: from op 0) to the last op that reads it (the model
output: to the last op). A tensor written but never read lives only during the op writing it.

Sizes are rounded up to ``alignment`` bytes before planning, so every offset is a multiple of
it; TFLite Micro aligns tensor buffers to 16 bytes (``kBufferAlignment = 16`` in
``tensorflow/lite/micro/micro_allocator.cc``: "a common requirement for SIMD extensions").
``alignment=1`` plans raw bytes.

In-place ops (their output shares a buffer with an input, so no new buffer is planned):

* ``flatten`` always: it is a reshape of contiguous memory (an alias, nothing is written);
* with ``in_place=True`` (default), ``relu`` and ``add``: both are element-wise (output element
  ``i`` depends only on input element(s) ``i`` of the same shape), so the kernel may overwrite
  an input as it goes. This is legal only when no later op reads that input's buffer (its last
  use, over every tensor already sharing the buffer, is this op) and the buffer does not hold
  the model input (which the application owns) or the model output. ``add`` writes into the
  first of its two inputs that qualifies.

Convolution, linear and pooling never run in place (a window reads elements after it writes).
Scratch buffers (e.g. CMSIS-NN's im2col buffer) can be planned too: they live during one op.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tinylarge.tiny.graph import TinyModel

#: TFLite Micro's tensor buffer alignment, bytes (``kBufferAlignment``, micro_allocator.cc).
TFLM_ALIGNMENT_BYTES = 16
#: Ops that may overwrite an input whose last use they are (see the module docstring).
IN_PLACE_KINDS = ("relu", "add")
#: Ops whose output is always an alias of their input.
ALIAS_KINDS = ("flatten",)
SCRATCH_PREFIX = "scratch:"


@dataclass(frozen=True)
class BufferRequest:
    """A buffer to place: ``size_bytes`` live from op ``first_op`` to ``last_op`` inclusive."""

    name: str
    size_bytes: int
    first_op: int
    last_op: int

    def overlaps(self, other: BufferRequest) -> bool:
        """Whether the two lifetimes share at least one op."""
        return not (self.first_op > other.last_op or other.first_op > self.last_op)


@dataclass(frozen=True)
class PlannedBuffer:
    """A placed buffer.

    ``tensors`` are the activation tensors sharing it (empty for a scratch buffer);
    ``size_bytes`` is the largest of them, ``aligned_bytes`` that rounded up to the alignment;
    the buffer occupies ``[offset, offset + aligned_bytes)`` of the arena.
    """

    name: str
    tensors: tuple[str, ...]
    size_bytes: int
    aligned_bytes: int
    first_op: int
    last_op: int
    offset: int

    @property
    def end(self) -> int:
        """First byte after the buffer."""
        return self.offset + self.aligned_bytes


@dataclass(frozen=True)
class MemoryPlan:
    """Arena layout: placed buffers (in order of first use), arena size, alignment."""

    buffers: tuple[PlannedBuffer, ...]
    arena_bytes: int
    alignment: int

    def buffer_of(self, tensor: str) -> PlannedBuffer:
        """The buffer that holds ``tensor`` (a tensor or scratch buffer name)."""
        for buf in self.buffers:
            if tensor in buf.tensors or tensor == buf.name:
                return buf
        raise KeyError(f"no buffer holds {tensor!r}")

    def offset_of(self, tensor: str) -> int:
        """Arena offset of ``tensor``, bytes."""
        return self.buffer_of(tensor).offset

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "arena_bytes": self.arena_bytes,
            "alignment": self.alignment,
            "buffers": [
                {
                    "name": b.name,
                    "tensors": list(b.tensors),
                    "size_bytes": b.size_bytes,
                    "aligned_bytes": b.aligned_bytes,
                    "first_op": b.first_op,
                    "last_op": b.last_op,
                    "offset": b.offset,
                }
                for b in self.buffers
            ],
        }


def align_up(size: int, alignment: int) -> int:
    """``size`` rounded up to a multiple of ``alignment``."""
    return -(-size // alignment) * alignment


def _check_alignment(alignment: int) -> None:
    if not isinstance(alignment, int) or alignment < 1:
        raise ValueError(f"alignment must be a positive integer (bytes), got {alignment!r}")


def greedy_offsets(requests: Sequence[BufferRequest], alignment: int = 1) -> tuple[int, ...]:
    """Offsets (bytes) of ``requests`` placed by the greedy algorithm, in request order.

    Parameters
    ----------
    requests : sequence of BufferRequest
        Sizes in bytes (rounded up to ``alignment`` before placing), lifetimes in op indices.
    alignment : int
        Byte alignment of every size and offset.

    Returns
    -------
    tuple of int
        ``offsets[i]`` is where ``requests[i]`` starts.
    """
    _check_alignment(alignment)
    for r in requests:
        if r.size_bytes < 0 or r.first_op < 0 or r.first_op > r.last_op:
            raise ValueError(
                f"buffer {r.name!r}: need size_bytes >= 0 and 0 <= first_op <= last_op, got "
                f"size {r.size_bytes}, lifetime [{r.first_op}, {r.last_op}]"
            )
    sizes = [align_up(r.size_bytes, alignment) for r in requests]
    order = sorted(range(len(requests)), key=lambda i: (-sizes[i], requests[i].first_op, i))
    offsets = [0] * len(requests)
    placed: list[tuple[int, int, int]] = []  # (offset, placement number, request index)
    for number, i in enumerate(order):
        candidate = 0
        for offset, _, j in placed:  # by offset; skip buffers not live at the same time
            if not requests[i].overlaps(requests[j]):
                continue
            if offset - candidate >= sizes[i]:
                break  # the gap before this buffer is big enough
            candidate = max(candidate, offset + sizes[j])
        offsets[i] = candidate
        bisect.insort(placed, (candidate, number, i))
    return tuple(offsets)


def tensor_lifetimes(model: TinyModel) -> dict[str, tuple[int, int]]:
    """``{tensor: (first_op, last_op)}`` for the model input and every op output.

    Ops are numbered in execution order from 0. See the module docstring for the rules.
    """
    last = len(model.ops) - 1
    lifetimes = {model.input: (0, 0)}
    for i, op in enumerate(model.ops):
        lifetimes[op.output] = (i, i)
        for name in op.inputs:
            first, _ = lifetimes[name]
            lifetimes[name] = (first, i)
    first, _ = lifetimes[model.output]
    lifetimes[model.output] = (first, max(last, first))
    return lifetimes


def _merge_in_place(
    model: TinyModel, lifetimes: Mapping[str, tuple[int, int]], in_place: bool
) -> dict[str, list[str]]:
    """Group tensors that share a buffer: ``{root tensor: [tensors]}``, roots in first-use order."""
    group_of = {name: name for name in lifetimes}
    groups: dict[str, list[str]] = {name: [name] for name in lifetimes}
    pinned = {model.input, model.output}
    for i, op in enumerate(model.ops):
        target: str | None = None
        if op.kind in ALIAS_KINDS:
            target = group_of[op.inputs[0]]
        elif in_place and op.kind in IN_PLACE_KINDS:
            for name in op.inputs:
                members = groups[group_of[name]]
                ends_here = max(lifetimes[m][1] for m in members) == i
                if ends_here and pinned.isdisjoint(members):
                    target = group_of[name]
                    break
        if target is not None:
            groups[target].append(op.output)
            del groups[op.output]
            group_of[op.output] = target
    return groups


def plan_memory(
    model: TinyModel,
    *,
    alignment: int = TFLM_ALIGNMENT_BYTES,
    in_place: bool = True,
    scratch_bytes: Mapping[str, int] | None = None,
) -> MemoryPlan:
    """Plan the activation arena of ``model`` (one sample, int8: one byte per element).

    Parameters
    ----------
    model : TinyModel
        Ops in execution order.
    alignment : int, default 16
        Byte alignment of every buffer (TFLite Micro uses 16).
    in_place : bool, default True
        Let ``relu`` and ``add`` overwrite an input whose last use they are (``flatten`` is
        always an alias).
    scratch_bytes : Mapping[str, int], optional
        ``{op name: bytes}`` of per-op scratch buffers, planned live during that op only and
        named ``"scratch:<op name>"``.

    Returns
    -------
    MemoryPlan
    """
    _check_alignment(alignment)
    lifetimes = tensor_lifetimes(model)
    groups = _merge_in_place(model, lifetimes, in_place)
    requests: list[BufferRequest] = []
    members: list[tuple[str, ...]] = []
    for root, tensors in groups.items():
        requests.append(
            BufferRequest(
                name=root,
                size_bytes=max(model.tensors[t].size for t in tensors),
                first_op=min(lifetimes[t][0] for t in tensors),
                last_op=max(lifetimes[t][1] for t in tensors),
            )
        )
        members.append(tuple(tensors))
    op_index = {op.name: i for i, op in enumerate(model.ops)}
    for op_name, size in (scratch_bytes or {}).items():
        if op_name not in op_index:
            raise ValueError(f"scratch_bytes names unknown op {op_name!r}")
        if size > 0:
            i = op_index[op_name]
            requests.append(BufferRequest(SCRATCH_PREFIX + op_name, int(size), i, i))
            members.append(())
    offsets = greedy_offsets(requests, alignment)
    buffers = [
        PlannedBuffer(
            name=r.name,
            tensors=m,
            size_bytes=r.size_bytes,
            aligned_bytes=align_up(r.size_bytes, alignment),
            first_op=r.first_op,
            last_op=r.last_op,
            offset=off,
        )
        for r, m, off in zip(requests, members, offsets, strict=True)
    ]
    buffers.sort(key=lambda b: (b.first_op, b.last_op, b.name))
    arena = max((b.end for b in buffers), default=0)
    return MemoryPlan(buffers=tuple(buffers), arena_bytes=arena, alignment=alignment)
