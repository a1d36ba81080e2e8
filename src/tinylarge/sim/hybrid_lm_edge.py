"""The edge's verification of draft tokens, timed on this machine, as a batching server model.

The edge keeps one decoding state (KV cache) per device; verifying a token of ``b`` devices at
once is one batched `LanguageModel.extend` of one token each. Its time at a few batch sizes
gives ``setup_s + b x per_item_s`` (`tinylarge.net.edge_service.fit_batch_service`), the model
`tinylarge.net.uplink.send_messages` queues the requests against. The figures are this
machine's (stated in the model's ``source``), so they differ between machines.
"""

from __future__ import annotations

import time

import numpy as np

from tinylarge.models.text.language_model import LanguageModel
from tinylarge.net.edge_service import EdgeServiceModel, fit_batch_service

#: Tokens of context every timed state holds (a typical point mid-way through a reply).
_PRIMED_TOKENS = 32


def _fastest_extend_s(target: LanguageModel, batch: int, repeats: int) -> float:
    """Fastest of ``repeats`` batched one-token `extend` calls over ``batch`` states, s
    (the fastest, not the median: on a shared CPU the slower runs measure the other load)."""
    prompt = [i % target.vocab_size for i in range(_PRIMED_TOKENS)]
    states = [target.start(prompt) for _ in range(batch)]  # each call adds one token to each
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        target.extend(states, [[1]] * batch)
        times.append(time.perf_counter() - started)
    return float(np.min(times[1:]))


def measure_verification(
    target: LanguageModel, *, max_batch: int, max_wait_s: float, repeats: int = 5
) -> EdgeServiceModel:
    """Time the target LM's batched one-token verification at batch 1, 2, 4, ... up to
    ``max_batch`` (fastest of ``repeats`` after a warm-up each) and fit the edge's batching
    model; ``max_wait_s`` is the edge's batching wait, s."""
    if max_batch < 1 or repeats < 1:
        raise ValueError(f"max_batch and repeats must be >= 1, got {max_batch}, {repeats}")
    sizes = sorted({min(2**k, max_batch) for k in range(max_batch.bit_length() + 1)})
    service = [_fastest_extend_s(target, b, repeats) for b in sizes]
    setup, per_item = fit_batch_service(np.array(sizes), np.array(service))
    shown = ", ".join(f"batch {b} {s * 1e3:.2f} ms" for b, s in zip(sizes, service, strict=True))
    return EdgeServiceModel(
        setup_s=setup,
        per_item_s=per_item,
        max_batch=max_batch,
        max_wait_s=max_wait_s,
        source=f"the target LM's one-token verification measured on this machine: {shown}",
    )
