"""The precise timer of the device agents and the edge's batching wait."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import numpy as np

from tinylarge.deploy.clock import MAX_LEAD_S, PreciseTimer


def test_sleeps_end_in_deadline_order_and_never_too_early() -> None:
    async def main() -> tuple[list[int], list[float], bool, np.ndarray]:
        timer = PreciseTimer.acquire(asyncio.get_running_loop())
        start = time.monotonic() + 0.02
        targets = start + 0.003 * np.random.default_rng(0).permutation(60)  # 3 ms apart
        order: list[int] = []
        early: list[float] = []

        async def one(k: int) -> None:
            await timer.sleep_until(float(targets[k]))
            early.append(float(targets[k]) - time.monotonic())
            order.append(k)

        sleepers = [asyncio.create_task(one(k)) for k in range(60)]
        doomed = asyncio.create_task(timer.sleep_until(start + 0.05))  # cancelled mid-way
        await asyncio.sleep(0.03)
        doomed.cancel()
        await asyncio.gather(*sleepers)
        await timer.sleep_until(time.monotonic() - 1.0)  # a past instant: returns at once
        precise = timer.precise
        timer.release()
        return order, early, precise, targets

    order, early, precise, targets = asyncio.run(main())
    assert precise  # the main thread of a POSIX process
    assert order == np.argsort(targets).tolist()
    assert max(early) <= MAX_LEAD_S + 1e-4  # at most the learnt head start early


def test_one_timer_per_loop_and_sigalrm_given_back() -> None:
    before = signal.getsignal(signal.SIGALRM)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = PreciseTimer.acquire(loop), PreciseTimer.acquire(loop)
        assert a is b and a.users == 2  # an edge server and a fleet in one loop share it
        a.release()
        assert a.precise  # still in use by the other
        b.release()
        assert not a.precise and PreciseTimer.acquire(loop) is not a
        PreciseTimer.acquire(loop).release()

    asyncio.run(main())
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_outside_the_main_thread_it_falls_back_to_asyncio() -> None:
    result: dict[str, object] = {}

    def worker() -> None:
        async def main() -> None:
            timer = PreciseTimer.acquire(asyncio.get_running_loop())
            target = time.monotonic() + 0.01
            await timer.sleep_until(target)
            result["precise"], result["late"] = timer.precise, time.monotonic() - target
            timer.release()

        asyncio.run(main())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert result["precise"] is False and float(result["late"]) >= 0  # type: ignore[arg-type]
