"""What one SecAgg+ round costs a client: bytes of every message and device compute.

Messages per client (Bell et al., CCS 2020, and the four stages of Flower's
``SecAggPlusWorkflow``), with ``k = num_shares - 1`` neighbours, client ids of 8 bytes (as
Flower's node ids), 32-byte X25519 public keys and share values of `SHARE_VALUE_BYTES`:

============  ==========================================  ====================================
stage         client -> server                            server -> client
============  ==========================================  ====================================
setup         two public keys (64 B)                      the parameters (8 x 8 B)
share keys    k sealed share pairs (+ receiver id)        k neighbours' id + public keys
masked input  the masked vector (dim x element bytes)     k sealed share pairs (+ sender id)
unmask        k + 1 shares (id, x, value)                 the k + 1 neighbourhood ids
============  ==========================================  ====================================

A client that drops out after sharing its keys (the case the shares exist for) sent the first
two uplink messages and received the first two downlink ones.

Device compute, in cycles on the target MCU (figures of `tinylarge.secure.costs`: wolfSSL's
Cortex-M4 benchmarks): two X25519 key generations; per neighbour one X25519 agreement + HKDF
for the share key, ChaCha20-Poly1305 over the sent and the received shares, one X25519 + HKDF
for the pairwise mask; per mask (k pairwise + 1 self) ``dim`` words of ChaCha20 keystream,
charged at ChaCha20-Poly1305's cycles per byte (an upper bound: Poly1305 is not needed).
HKDF-SHA256 of a 32-byte secret is charged as 8 SHA-256 compressions (RFC 5869: one HMAC
to extract and one to expand a 32-byte key; RFC 2104: an HMAC of a short message hashes two
blocks twice). Not charged: the Shamir polynomials, ``2 (k + 1) (threshold - 1)`` products of
257-bit numbers, small beside the ``2k + 2`` X25519 operations (each about 2,550 products
of 255-bit numbers: 255 Montgomery-ladder steps of 10 multiplications, RFC 7748 section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylarge.secure.costs import AEAD_CYCLES_PER_BYTE, SHA256_CYCLES_PER_BYTE, X25519_CYCLES
from tinylarge.secure.secagg.encoding import FixedPoint
from tinylarge.secure.secagg.masks import KEY_BYTES, sealed_share_bytes
from tinylarge.secure.secagg.shamir import SHARE_VALUE_BYTES
from tinylarge.tiny.mcu import McuProfile

#: Bytes of a client id on the wire (Flower's node ids are 64-bit integers).
ID_BYTES = 8
#: The setup message: 8 parameters of 8 bytes (Flower's stage-0 configuration holds 8 entries).
SETUP_BYTES = 8 * 8
#: Bytes of a share's x coordinate.
SHARE_X_BYTES = 4
#: HKDF-SHA256 of a 32-byte secret into a 32-byte key: 8 SHA-256 compressions of 64 bytes.
HKDF_CYCLES = 8 * 64 * SHA256_CYCLES_PER_BYTE
_CHACHA_CYCLES_PER_BYTE = AEAD_CYCLES_PER_BYTE["chacha20-poly1305"]


@dataclass(frozen=True)
class ClientCosts:
    """One client's bytes, messages and compute for a round (survivor, or dropped out)."""

    bytes_up: int
    bytes_down: int
    messages_up: int
    messages_down: int
    cycles: float

    def energy_j(self, mcu: McuProfile) -> float:
        """The compute's energy on ``mcu``: cycles / clock x active power, J."""
        return self.cycles / mcu.clock_hz * mcu.active_power_w

    def time_s(self, mcu: McuProfile) -> float:
        """The compute's time on ``mcu``, s."""
        return self.cycles / mcu.clock_hz


def client_costs(
    dim: int, num_shares: int, encoding: FixedPoint, *, dropped: bool = False
) -> ClientCosts:
    """Costs of one client whose neighbourhood has ``num_shares`` members (itself included)
    and whose vector has ``dim`` elements; ``dropped``: it left after sharing its keys."""
    k = num_shares - 1
    sealed = sealed_share_bytes(SHARE_VALUE_BYTES)
    keys_up = 2 * KEY_BYTES
    shares_up = k * (ID_BYTES + sealed)
    setup_down = SETUP_BYTES
    keys_down = k * (ID_BYTES + 2 * KEY_BYTES)
    plain = sealed - 16
    share_cycles = k * (X25519_CYCLES + HKDF_CYCLES + _CHACHA_CYCLES_PER_BYTE * plain)
    keygen = 2 * X25519_CYCLES
    if dropped:
        return ClientCosts(keys_up + shares_up, setup_down + keys_down, 2, 2, keygen + share_cycles)
    masked_up = dim * encoding.element_bytes
    unmask_up = num_shares * (ID_BYTES + SHARE_X_BYTES + SHARE_VALUE_BYTES)
    forwarded_down = k * (ID_BYTES + sealed)
    unmask_down = num_shares * ID_BYTES
    word = 4 if encoding.modulus_bits <= 32 else 8
    mask_cycles = (
        k * (X25519_CYCLES + HKDF_CYCLES)
        + HKDF_CYCLES
        + num_shares * dim * word * _CHACHA_CYCLES_PER_BYTE
    )
    open_cycles = k * _CHACHA_CYCLES_PER_BYTE * plain
    return ClientCosts(
        bytes_up=keys_up + shares_up + masked_up + unmask_up,
        bytes_down=setup_down + keys_down + forwarded_down + unmask_down,
        messages_up=4,
        messages_down=4,
        cycles=keygen + share_cycles + open_cycles + mask_cycles,
    )
