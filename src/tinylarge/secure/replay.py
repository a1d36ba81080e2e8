"""A sliding anti-replay window over 64-bit sequence numbers (RFC 4303 section 3.4.3 style).

The window remembers the highest accepted number and which of the ``size`` numbers below it were
accepted. A number is fresh if it is above the highest, or inside the window and not yet seen.
`check` only looks; `accept` records, and is called only after the message's tag verified
(RFC 6347 section 4.1.2.6), so forged messages never move the window.
"""

from __future__ import annotations

from tinylarge.secure.errors import Replay

#: Default window: 64 messages (the size DTLS, RFC 6347 4.1.2.6, and IPsec, RFC 4303, recommend).
DEFAULT_WINDOW = 64
MAX_SEQUENCE = 2**64 - 1


class ReplayWindow:
    """Which sequence numbers were accepted, within the last ``size``."""

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
            raise ValueError(f"replay window size must be an integer in 1..4096, got {size!r}")
        self.size = size
        self.highest = -1  # nothing accepted yet
        self._seen = 0  # bit i: highest - i was accepted

    def check(self, seq: int) -> None:
        """`Replay` if ``seq`` was accepted before or is older than the window."""
        if seq > self.highest:
            return
        offset = self.highest - seq
        if offset >= self.size:
            raise Replay(
                f"sequence {seq} is older than the window (highest {self.highest}, "
                f"size {self.size})"
            )
        if self._seen >> offset & 1:
            raise Replay(f"sequence {seq} was already accepted")

    def accept(self, seq: int) -> None:
        """Record ``seq`` (after `check` and after the tag verified)."""
        self.check(seq)
        if seq > self.highest:
            shift = seq - self.highest
            self._seen = ((self._seen << shift) | 1) & ((1 << self.size) - 1)
            self.highest = seq
        else:
            self._seen |= 1 << (self.highest - seq)
