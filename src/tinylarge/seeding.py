"""Named, reproducible random streams derived from one scenario seed.

Every stage asks for its own stream by name (``rng_for(seed, "task", "radio")``), so adding a
stage or drawing more numbers in one stage never shifts the numbers another stage sees.
No code in tinylarge uses global random state.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, *names: str) -> int:
    """Return a 63-bit integer seed derived from ``seed`` and a path of stream names.

    Parameters
    ----------
    seed : int
        The scenario seed (non-negative).
    *names : str
        The stream's name path, e.g. ``("task", "radio")``.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    words = [seed] + [zlib.crc32(name.encode("utf-8")) for name in names]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """Return an independent ``numpy.random.Generator`` for the named stream."""
    return np.random.default_rng(derive_seed(seed, *names))
