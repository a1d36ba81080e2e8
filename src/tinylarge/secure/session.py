"""A protected session: one key and one sequence counter per direction, AEAD per message.

`Session.seal` frames a payload (`tinylarge.secure.wire`) and encrypts it under the sending
key; `Session.open` parses, checks the device id, the size and the replay window, verifies the
tag, and only then records the sequence number and returns the payload. Any failure raises a
`SecurityError` subclass and returns nothing.
"""

from __future__ import annotations

from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from tinylarge.secure.errors import BadTag, TooLarge, UnknownDevice
from tinylarge.secure.replay import DEFAULT_WINDOW, MAX_SEQUENCE, ReplayWindow
from tinylarge.secure.wire import DEFAULT_MAX_PAYLOAD, nonce, pack_header, parse

Aead = Literal["chacha20-poly1305", "aes-256-gcm"]
AEADS: tuple[Aead, ...] = ("chacha20-poly1305", "aes-256-gcm")
KEY_BYTES = 32


def _cipher(aead: Aead, key: bytes) -> ChaCha20Poly1305 | AESGCM:
    if len(key) != KEY_BYTES:
        raise ValueError(f"session keys are {KEY_BYTES} bytes, got {len(key)}")
    if aead == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    if aead == "aes-256-gcm":
        return AESGCM(key)
    raise ValueError(f"aead must be one of {AEADS}, got {aead!r}")


class Session:
    """One side of a session with a device (the device's or the server's).

    Parameters
    ----------
    device_id : str
        The device the session belongs to; it is in every header, both directions.
    send_key, receive_key : bytes
        32-byte keys of the two directions (from the handshake).
    aead : {"chacha20-poly1305", "aes-256-gcm"}
    window : int
        Replay-window size (messages).
    max_payload : int
        Largest payload accepted, bytes.
    """

    def __init__(
        self,
        device_id: str,
        send_key: bytes,
        receive_key: bytes,
        *,
        aead: Aead = "chacha20-poly1305",
        window: int = DEFAULT_WINDOW,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        pack_header(0, device_id, 0)  # validates the id
        if send_key == receive_key:
            raise ValueError("the two directions must use different keys")
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 0:
            raise ValueError(f"max_payload must be an integer >= 0, got {max_payload!r}")
        self.device_id, self.aead, self.max_payload = device_id, aead, max_payload
        self._send = _cipher(aead, send_key)
        self._receive = _cipher(aead, receive_key)
        self._next_seq = 0
        self.window = ReplayWindow(window)
        #: Sequence number of the last message `open` accepted (None before any).
        self.last_opened_seq: int | None = None

    @property
    def next_seq(self) -> int:
        """Sequence number the next `seal` will use (it is in that message's header)."""
        return self._next_seq

    def seal(self, msg_type: int, payload: bytes) -> bytes:
        """The wire bytes of ``payload`` as message type ``msg_type`` (0..255)."""
        if len(payload) > self.max_payload:
            raise TooLarge(f"payload of {len(payload)} bytes exceeds {self.max_payload}")
        if self._next_seq > MAX_SEQUENCE:
            raise OverflowError("the session's sequence numbers are exhausted; start a new one")
        seq = self._next_seq
        header = pack_header(msg_type, self.device_id, seq)
        self._next_seq += 1
        return header + self._send.encrypt(nonce(seq), bytes(payload), header)

    def open(self, wire: bytes) -> tuple[int, bytes]:
        """``(msg_type, payload)`` of a received message, or a `SecurityError` saying why not."""
        header, ciphertext = parse(wire, self.max_payload)
        if header.device_id != self.device_id:
            raise UnknownDevice(
                f"message from device {header.device_id!r} on the session of {self.device_id!r}"
            )
        self.window.check(header.seq)
        try:
            payload = self._receive.decrypt(nonce(header.seq), ciphertext, header.raw)
        except InvalidTag:
            raise BadTag("authentication tag does not verify") from None
        self.window.accept(header.seq)
        self.last_opened_seq = header.seq
        return header.msg_type, payload
