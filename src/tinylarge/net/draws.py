"""Random draws of messages and arrivals from one stream per cell.

A cell's messages draw their fast fading and HARQ outcomes, and a cell's devices their Poisson
arrivals, from the cell's own stream: ``SeedSequence(seed, spawn_key=(cell, purpose))``
(NumPy's independent-stream construction, numpy.org/doc/stable/reference/random/parallel.html).
So a message's draws depend on its cell and its place among that cell's messages only, never on
which other cells are simulated with it: a scenario split into shards of cells gives the same
numbers as the whole scenario in one process, whatever the number of shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.fading import FadingKind, fading_power_gain
from tinylarge.net.link import harq_transmissions

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Second word of a cell stream's spawn key: what the stream is for.
_LINK, _ARRIVALS = 0, 1


def stream_seed(rng: np.random.Generator) -> int:
    """One 63-bit seed for a run's per-cell streams, drawn from the caller's stream."""
    return int(rng.integers(0, 2**63, dtype=np.int64))


def cell_stream(seed: int, cell: int, purpose: int) -> np.random.Generator:
    """The independent stream of ``cell`` for one ``purpose`` (link or arrivals)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(cell, purpose)))
    )


def cell_runs(cell: npt.ArrayLike) -> tuple[IntArray, IntArray, IntArray]:
    """Group positions by cell, keeping their order within a cell.

    Returns the order (positions sorted stably by cell), the distinct cells, and where each
    cell's positions start in the order (with the total length appended).
    """
    c = np.asarray(cell, dtype=np.int64)
    if c.size and (c == c[0]).all():  # one cell: nothing to sort
        return np.arange(c.size, dtype=np.int64), c[:1].copy(), np.array([0, c.size])
    order = np.argsort(c, kind="stable")
    sorted_cell = c[order]
    starts = np.flatnonzero(np.r_[True, sorted_cell[1:] != sorted_cell[:-1]])
    return order, sorted_cell[starts], np.r_[starts, c.size].astype(np.int64)


@dataclass(frozen=True)
class MessageDraws:
    """Per-message random draws of the link (arrays of shape (n,)): uplink and downlink fast
    fading power gains (linear), HARQ transmissions and whether HARQ got the message through."""

    uplink_fading: FloatArray
    transmissions: IntArray
    harq_ok: BoolArray
    downlink_fading: FloatArray


def draw_messages(
    seed: int,
    cell: npt.ArrayLike,
    *,
    fading: FadingKind,
    rician_k_db: float,
    bler: float,
    max_transmissions: int,
) -> MessageDraws:
    """Draws of messages sent in ``cell`` (shape (n,)), each cell from its own stream.

    A cell's stream gives, for its messages in their order here: the uplink fading, then the
    HARQ outcomes, then the downlink fading.
    """
    order, cells, bounds = cell_runs(cell)
    n = order.size
    up = np.empty(n)
    down = np.empty(n)
    tx = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=np.bool_)
    for c, lo, hi in zip(cells.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        rng = cell_stream(seed, c, _LINK)
        where = order[lo:hi]
        m = hi - lo
        up[where] = fading_power_gain(rng, m, kind=fading, k_factor_db=rician_k_db)
        tx[where], ok[where] = harq_transmissions(
            rng, m, bler=bler, max_transmissions=max_transmissions
        )
        down[where] = fading_power_gain(rng, m, kind=fading, k_factor_db=rician_k_db)
    return MessageDraws(up, tx, ok, down)


def cell_poisson_arrivals(
    seed: int,
    device_cell: npt.ArrayLike,
    cells: npt.ArrayLike,
    *,
    rate_hz: float,
    duration_s: float,
    by_cell: tuple[IntArray, IntArray, IntArray] | None = None,
) -> tuple[IntArray, FloatArray]:
    """Poisson message arrivals of the devices of ``cells``: (device, time), by cell then time.

    ``device_cell`` (shape (n_devices,)) is every device's cell (``by_cell``: its `cell_runs`,
    to skip the sort when called for many groups of cells). Each cell's stream draws its count
    ~ Poisson(devices x rate x duration), uniform times and a uniform device per arrival
    (superposition of the devices' independent Poisson processes).
    """
    if not rate_hz > 0 or not duration_s > 0:
        raise ValueError(f"need rate_hz > 0 and duration_s > 0, got {rate_hz}, {duration_s}")
    order, present, bounds = by_cell if by_cell is not None else cell_runs(device_cell)
    where = {c: i for i, c in enumerate(present.tolist())}
    devices: list[IntArray] = []
    times: list[FloatArray] = []
    for c in np.asarray(cells, dtype=np.int64).tolist():
        if c not in where:
            continue
        own = order[bounds[where[c]] : bounds[where[c] + 1]]
        rng = cell_stream(seed, c, _ARRIVALS)
        n = int(rng.poisson(own.size * rate_hz * duration_s))
        times.append(np.sort(rng.uniform(0.0, duration_s, n)))
        devices.append(own[rng.integers(0, own.size, n)])
    if not devices:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(devices).astype(np.int64), np.concatenate(times)
