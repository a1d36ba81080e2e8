"""Key agreement, key derivation and the pseudo-random generator of SecAgg+'s masks.

Every client holds two X25519 key pairs (RFC 7748) per round, as in Bonawitz et al. (CCS 2017,
section 4): ``c`` to agree a key with each neighbour for the encrypted shares the server
forwards, ``s`` to agree the seed of each pairwise mask. A shared secret goes through
HKDF-SHA256 (RFC 5869) with a label naming its use, giving a 32-byte key.

Masks are the ChaCha20 keystream (RFC 8439; `cryptography`'s ``algorithms.ChaCha20``, counter
and nonce zero) under that key, read as little-endian words and reduced modulo
``2**modulus_bits``: a cryptographically secure PRG, so a masked vector is computationally
indistinguishable from uniform. NumPy's PCG64 (or Flower's ``numpy.random.RandomState``
seeded with 32 bits of the shared secret) is not: its state can be recovered from its output.
Shares travel sealed with ChaCha20-Poly1305 under the ``c`` key; each direction of a pair uses
its own nonce (the sender's id), so a key never seals two messages with one nonce.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tinylarge.secure.errors import BadTag, Malformed

UIntArray = npt.NDArray[np.uint64]

KEY_BYTES = 32
#: ChaCha20-Poly1305 tag, bytes (RFC 8439 section 2.8).
TAG_BYTES = 16
MASK_LABEL = b"tinylarge secagg+ pairwise mask"
SHARE_LABEL = b"tinylarge secagg+ share encryption"
SELF_MASK_LABEL = b"tinylarge secagg+ self mask"
# sender id, receiver id (8 bytes each), share x (4 bytes), two share values
_SHARE_HEADER = struct.Struct("<QQI")


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32-byte raw public key of ``key``."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def agreed_key(own: X25519PrivateKey, peer: bytes, label: bytes) -> bytes:
    """HKDF-SHA256(X25519(own, peer)) with ``label`` as info: 32 bytes."""
    secret = own.exchange(X25519PublicKey.from_public_bytes(peer))
    return derive(secret, label)


def derive(secret: bytes, label: bytes) -> bytes:
    """HKDF-SHA256 of ``secret`` (no salt) with ``label`` as info: 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(secret)


def prg(key: bytes, size: int, modulus_bits: int) -> UIntArray:
    """``size`` uniform integers modulo ``2**modulus_bits`` from the ChaCha20 keystream of
    ``key`` (4 bytes per value up to 32 bits, else 8)."""
    word = 4 if modulus_bits <= 32 else 8
    cipher = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    stream = cipher.update(bytes(word * size))
    values = np.frombuffer(stream, dtype=np.uint32 if word == 4 else np.uint64)
    return values.astype(np.uint64) & np.uint64((1 << modulus_bits) - 1)


def seal_shares(
    key: bytes, sender: int, receiver: int, x: int, share_values: tuple[bytes, bytes]
) -> bytes:
    """The ciphertext carrying ``sender``'s two shares (value bytes) at ``x`` to ``receiver``."""
    plain = _SHARE_HEADER.pack(sender, receiver, x) + b"".join(share_values)
    return ChaCha20Poly1305(key).encrypt(
        _nonce(sender), plain, _SHARE_HEADER.pack(sender, receiver, 0)
    )


def open_shares(
    key: bytes, sender: int, receiver: int, value_bytes: int, ciphertext: bytes
) -> tuple[int, bytes, bytes]:
    """``(x, share value 1, share value 2)`` from `seal_shares`' ciphertext.

    ``BadTag`` when the ciphertext or its claimed sender/receiver was changed; ``Malformed``
    when it decrypts but names other ends or has the wrong length.
    """
    from cryptography.exceptions import InvalidTag

    try:
        plain = ChaCha20Poly1305(key).decrypt(
            _nonce(sender), ciphertext, _SHARE_HEADER.pack(sender, receiver, 0)
        )
    except InvalidTag as error:
        raise BadTag(f"shares from client {sender} to {receiver} do not verify") from error
    head = _SHARE_HEADER.size
    if len(plain) != head + 2 * value_bytes:
        raise Malformed(f"shares from client {sender} hold {len(plain)} bytes")
    src, dst, x = _SHARE_HEADER.unpack(plain[:head])
    if (src, dst) != (sender, receiver):
        raise Malformed(f"shares claim {src} -> {dst}, expected {sender} -> {receiver}")
    return x, plain[head : head + value_bytes], plain[head + value_bytes :]


def sealed_share_bytes(value_bytes: int) -> int:
    """Bytes of one `seal_shares` ciphertext whose share values take ``value_bytes`` each."""
    return _SHARE_HEADER.size + 2 * value_bytes + TAG_BYTES


def _nonce(sender: int) -> bytes:
    return struct.pack("<IQ", 0, sender)
