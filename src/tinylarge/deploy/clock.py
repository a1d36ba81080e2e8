"""Sub-millisecond sleeps for the device agents' emulated delays and the edge's batching wait.

asyncio's `asyncio.sleep` ends when the event loop's selector times out, and ``epoll_wait``
counts in whole milliseconds: CPython rounds every timeout *up* to the next millisecond
(``selectors.EpollSelector.select``), so each emulated delay overshot by about 1 ms on this
project's machine (median 1.07 ms for a device's 1.5 ms inference), and the edge's 2 ms batching
wait took 2.6-3 ms. `PreciseTimer` arms the process's interval timer (``setitimer(ITIMER_REAL)``,
microsecond resolution, POSIX) for the earliest waiting deadline; its SIGALRM wakes the loop
through asyncio's signal handling (``loop.add_signal_handler``), which resolves every sleep that
is due. Resuming a woken task still takes the loop some time (tens of microseconds idle, more
with many MQTT clients in the loop), so the timer learns how late its sleepers resume and fires
that much early: an integral controller on the lateness, so sleeps end on time on average, at
most 1 ms early. Where signals cannot be used (not the main thread, not POSIX) it falls back to
`asyncio.sleep`. A loop has one timer, shared through `acquire` / `release` (an edge server and
a fleet may share a loop, and a process has one SIGALRM).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import signal
import time
import weakref

#: Deadlines this close together are resolved by one alarm, s.
SLACK_S = 20e-6
#: Largest head start the timer gives itself, s, and how fast it learns it (EWMA weight).
MAX_LEAD_S, LEAD_WEIGHT = 1e-3, 0.05


class PreciseTimer:
    """``await timer.sleep_until(t)`` ends at ``time.monotonic() >= t`` to within tens of
    microseconds. One per event loop: get it with `acquire`, give it back with `release`."""

    @staticmethod
    def acquire(loop: asyncio.AbstractEventLoop) -> PreciseTimer:
        """The loop's timer (made on first use); every `acquire` needs its `release`."""
        timer = _TIMERS.get(loop)
        if timer is None:
            timer = _TIMERS[loop] = PreciseTimer(loop)
        timer.users += 1
        return timer

    def release(self) -> None:
        """One user less; the last one closes the timer."""
        self.users -= 1
        if self.users <= 0:
            _TIMERS.pop(self.loop, None)
            self.close()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.users = 0
        #: how late a woken sleeper resumes (signal, loop, other ready tasks), learnt as an
        #: EWMA and fired that much early, s
        self.lead_s = 0.0
        self.precise = hasattr(signal, "setitimer")
        if self.precise:
            try:
                loop.add_signal_handler(signal.SIGALRM, self._fire)
            except (RuntimeError, ValueError, NotImplementedError):
                self.precise = False  # not the main thread, or no signals on this platform

    async def sleep_until(self, monotonic_s: float) -> None:
        """Wait until ``time.monotonic()`` reaches ``monotonic_s`` (return at once if past)."""
        delay = monotonic_s - time.monotonic()
        if delay <= 0:
            return
        if not self.precise:
            await asyncio.sleep(delay)
            return
        future: asyncio.Future[None] = self.loop.create_future()
        heapq.heappush(self._heap, (monotonic_s, next(self._order), future))
        if self._heap[0][2] is future:
            self._arm()
        await future
        late = time.monotonic() - monotonic_s
        lead = self.lead_s + LEAD_WEIGHT * late  # drive the median lateness to zero
        self.lead_s = min(MAX_LEAD_S, max(0.0, lead))

    def _arm(self) -> None:
        while self._heap and self._heap[0][2].done():  # cancelled sleeps
            heapq.heappop(self._heap)
        if self._heap:
            wait = max(1e-6, self._heap[0][0] - self.lead_s - time.monotonic())
            signal.setitimer(signal.ITIMER_REAL, wait)
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _fire(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now + self.lead_s + SLACK_S:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)
        self._arm()

    def close(self) -> None:
        """Disarm the timer and give SIGALRM back."""
        if self.precise:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.loop.remove_signal_handler(signal.SIGALRM)
            self.precise = False
        for _, _, future in self._heap:
            future.cancel()
        self._heap.clear()


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PreciseTimer] = (
    weakref.WeakKeyDictionary()
)
