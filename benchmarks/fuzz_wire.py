"""Mutation campaign over the session wire format: no mutated message may be accepted.

Run by hand::

    python benchmarks/fuzz_wire.py [--messages 100000] [--seed 0]

See `tinylarge.secure.fuzz` for the mutations. Prints how many were accepted (must be 0) and
how many of each `SecurityError` subclass rejected each kind; any other exception fails.
"""

from __future__ import annotations

import argparse
import time

from tinylarge.secure.fuzz import fuzz_wire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    summary = fuzz_wire(args.messages, args.seed)
    seconds = time.perf_counter() - started
    print(f"{summary.messages:,} mutated messages in {seconds:.1f} s; accepted: {summary.accepted}")
    rejected = 0
    for kind, reasons in summary.rejections.items():
        for reason, count in reasons.items():
            print(f"  {kind + ':':<11} {reason:<14} {count:>8,}")
            rejected += count
    print("PASS" if summary.accepted == 0 and rejected == summary.messages else "FAIL")


if __name__ == "__main__":
    main()
