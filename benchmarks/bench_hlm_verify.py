"""The edge's batched verification: tokens/s of the target LM against the number of devices.

Run by hand::

    python benchmarks/bench_hlm_verify.py                     # the shipped target, 1-64 devices
    python benchmarks/bench_hlm_verify.py --target DIR --devices 1 8 32 --rounds 20

The edge keeps one decoding state (KV cache) per device. Every round, each of ``N`` devices
has one draft token to verify: **batched**, one `LanguageModel.extend` over all ``N`` states
(what `tinylarge serve` does with the requests that arrive together); **one by one**, ``N``
calls of one state each (an edge without batching). Tokens/s = N x rounds / time, after one
untimed round; the states start from a 32-token prompt, so the context grows from 33 tokens.
Median of ``--repeats`` runs. Torch threads: ``--threads`` (default 1, the edge's setting).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tinylarge.models.text.checkpoints import load_language_model
from tinylarge.models.text.language_model import LanguageModel


def _tokens_per_s(target: LanguageModel, devices: int, rounds: int, batched: bool) -> float:
    prompt = [(7 * i + 3) % target.vocab_size for i in range(32)]
    states = [target.start(prompt) for _ in range(devices)]
    token = [[5]] * devices
    target.extend(states, token)  # warm-up round
    started = time.perf_counter()
    for _ in range(rounds):
        if batched:
            target.extend(states, token)
        else:
            for state in states:
                target.extend([state], [[5]])
    return devices * rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="builtin", help="'builtin' or a model directory")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=16, help="tokens per device, timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target = load_language_model(args.target, role="target")
    print(f"target: {target.name}, {target.parameter_count:,} parameters, "
          f"{args.threads} thread(s), {args.rounds} rounds, median of {args.repeats}")  # fmt: skip
    print(f"{'devices':>8} {'batched tok/s':>14} {'one-by-one tok/s':>17} {'speed-up':>9}")
    for n in args.devices:
        batched = statistics.median(
            _tokens_per_s(target, n, args.rounds, True) for _ in range(args.repeats)
        )
        single = statistics.median(
            _tokens_per_s(target, n, args.rounds, False) for _ in range(args.repeats)
        )
        print(f"{n:>8} {batched:>14,.0f} {single:>17,.0f} {batched / single:>8.2f}x")


if __name__ == "__main__":
    main()
