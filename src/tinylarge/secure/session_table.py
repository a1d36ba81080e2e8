"""The server's sessions by device, with key confirmation before a new session replaces one.

A hello carries no challenge from the server (two flights, `tinylarge.secure.handshake`), so
anyone who captured a device's hello can replay it and the server will derive a session from it.
Nobody can use that session (the device's ephemeral private key is needed), but if it replaced
the device's working session, every later message of the device would fail to open: a replayed
capture would cut the device off until it handshakes again. So a new session stays *pending*
next to the current one until a message opens under it, which proves the peer holds its keys
(key confirmation, as in the Finished messages of TLS 1.3, RFC 8446 section 4.4.4); then it
replaces the current one. A device keeps at most ``max_pending`` pending sessions (the newest;
an identical hello again adds none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinylarge.secure.errors import SecurityError
from tinylarge.secure.session import Session

#: Pending sessions kept per device.
DEFAULT_MAX_PENDING = 4


@dataclass
class _Entry:
    current: Session | None = None
    #: (hello bytes, session), newest last
    pending: list[tuple[bytes, Session]] = field(default_factory=list)


class SessionTable:
    """Current and pending sessions per device id."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return sum(e.current is not None for e in self._entries.values())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._entries

    def offer(self, device_id: str, hello: bytes, session: Session) -> bool:
        """A session from a verified ``hello``, pending until confirmed; False if this very
        hello is already pending (a replay: nothing new to send)."""
        entry = self._entries.setdefault(device_id, _Entry())
        if any(h == hello for h, _ in entry.pending):
            return False
        entry.pending.append((hello, session))
        del entry.pending[: -self.max_pending]
        return True

    def current(self, device_id: str) -> Session | None:
        """The confirmed session of ``device_id`` (None: none yet)."""
        entry = self._entries.get(device_id)
        return None if entry is None else entry.current

    def open(self, device_id: str, wire: bytes) -> tuple[int, bytes, Session]:
        """``(msg_type, payload, session)`` of a message of ``device_id``: opened under its
        current session, else under a pending one, which then becomes current. Raises the
        current session's `SecurityError` (the pending one's if there is no current), or
        `KeyError` if the device has no session at all."""
        entry = self._entries[device_id]
        first_error: SecurityError | None = None
        if entry.current is not None:
            try:
                msg_type, payload = entry.current.open(wire)
                return msg_type, payload, entry.current
            except SecurityError as error:
                first_error = error
        for k in range(len(entry.pending) - 1, -1, -1):
            session = entry.pending[k][1]
            try:
                msg_type, payload = session.open(wire)
            except SecurityError as error:
                first_error = first_error or error
                continue
            entry.current, entry.pending = session, []
            return msg_type, payload, session
        if first_error is None:
            raise KeyError(device_id)
        raise first_error
