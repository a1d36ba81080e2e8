"""What the security layer costs a device and the network, from measured Cortex-M4 figures.

Cycle counts (wolfSSL's STM32 benchmarks with assembly, at 80 MHz), converted to cycles so
that they scale with the target MCU's clock; energy is cycles / clock x the board's active
power (as for inference, `tinylarge.tiny.mcu`):

- X25519: 31.6 ms -> 2.53 M cycles (the X25519-Cortex-M4 project's assembly needs 0.55 M; the
  wolfSSL figure is used for all operations so they come from one library);
- Ed25519 sign / verify: 16.0 / 36.6 ms -> 1.28 / 2.93 M cycles;
- ChaCha20-Poly1305: 1.78 MiB/s -> 42.9 cycles per byte;
- AES-GCM with the hardware AES unit: 3.69 MiB/s -> 20.7 cycles per byte. That row is AES-128;
  AES-256 runs 14 rounds instead of 10, so this is a lower bound for the layer's AES-256-GCM.
- SHA-256 (model bundles): 1,950 KB/s in C on a 168 MHz Cortex-M4 (STM32F405, MicroPython
  forum measurement of crypto-algorithms' sha256.c) -> 86 cycles per byte.

The per-core figures are applied to whichever MCU is the target (a Cortex-M7 or M33 needs
fewer cycles, an M0+ more): an approximation, said here and in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.secure.bundle import bundle_overhead_bytes, sign_bundle
from tinylarge.secure.handshake import KEY_LEN, SIG_LEN, DeviceHandshake
from tinylarge.secure.identity import Identity
from tinylarge.secure.session import AEADS, Aead
from tinylarge.secure.wire import overhead_bytes
from tinylarge.tiny.mcu import McuProfile

_WOLFSSL_CLOCK_HZ = 80e6
_MIB = 1024 * 1024
#: X25519 scalar multiplication, cycles (wolfSSL STM32 benchmarks, 31.6 ms at 80 MHz).
X25519_CYCLES = 31.6e-3 * _WOLFSSL_CLOCK_HZ
#: Ed25519 signature, cycles (wolfSSL STM32 benchmarks, 16.0 ms at 80 MHz).
ED25519_SIGN_CYCLES = 16.0e-3 * _WOLFSSL_CLOCK_HZ
#: Ed25519 verification, cycles (wolfSSL STM32 benchmarks, 36.6 ms at 80 MHz).
ED25519_VERIFY_CYCLES = 36.6e-3 * _WOLFSSL_CLOCK_HZ
#: Cycles per byte of each AEAD (wolfSSL STM32 benchmarks at 80 MHz: ChaCha20-Poly1305
#: 1.78 MiB/s, AES-128-GCM with hardware AES 3.69 MiB/s).
AEAD_CYCLES_PER_BYTE: dict[Aead, float] = {
    "chacha20-poly1305": _WOLFSSL_CLOCK_HZ / (1.78 * _MIB),
    "aes-256-gcm": _WOLFSSL_CLOCK_HZ / (3.69 * _MIB),
}
#: SHA-256 cycles per byte (C, Cortex-M4 at 168 MHz, 1,950 KB/s; see the module docstring).
SHA256_CYCLES_PER_BYTE = 168e6 / 1_950_000
#: The device's public-key work in one handshake: one X25519 key generation and one shared
#: secret, one signature (hello) and one verification (the server's reply).
HANDSHAKE_DEVICE_CYCLES = 2 * X25519_CYCLES + ED25519_SIGN_CYCLES + ED25519_VERIFY_CYCLES


def run_device_id(index: int, n_devices: int) -> str:
    """The id of device ``index`` of ``n_devices`` in a simulated run: ``device-00042``
    (at least 5 digits, as many as the largest index needs; 12 bytes up to 100,000 devices)."""
    if not 0 <= index < n_devices:
        raise ValueError(f"index must lie in [0, {n_devices}), got {index}")
    return f"device-{index:0{max(5, len(str(n_devices - 1)))}d}"


def _seconds(cycles: float, mcu: McuProfile) -> float:
    return cycles / mcu.clock_hz


def _joules(cycles: float, mcu: McuProfile) -> float:
    return cycles / mcu.clock_hz * mcu.active_power_w


def handshake_bytes(device_id: str) -> tuple[int, int]:
    """Bytes of the handshake the device sends (hello) and receives (reply)."""
    hello = len(DeviceHandshake(Identity.generate(device_id)).hello())
    return hello, 2 + KEY_LEN + SIG_LEN


def protocol_overhead(
    device_id: str, mcu: McuProfile, aead: Aead = "chacha20-poly1305"
) -> ProtocolOverhead:
    """The security layer's costs for a device named like ``device_id`` on ``mcu``.

    Per message: the wire format's header and tag (`overhead_bytes`), and the AEAD's cycles on
    every byte sealed or opened. Per session: the handshake's two flights and the device's
    public-key operations (`HANDSHAKE_DEVICE_CYCLES`).
    """
    if aead not in AEADS:
        raise ValueError(f"aead must be one of {AEADS}, got {aead!r}")
    up, down = handshake_bytes(device_id)
    per_byte = AEAD_CYCLES_PER_BYTE[aead]
    return ProtocolOverhead(
        message_bytes=overhead_bytes(device_id),
        device_s_per_byte=_seconds(per_byte, mcu),
        device_j_per_byte=_joules(per_byte, mcu),
        session_up_bytes=up,
        session_down_bytes=down,
        session_device_s=_seconds(HANDSHAKE_DEVICE_CYCLES, mcu),
        session_device_j=_joules(HANDSHAKE_DEVICE_CYCLES, mcu),
    )


@dataclass(frozen=True)
class BundleCost:
    """What installing a signed model bundle costs a device: extra bytes, time (s), energy (J)."""

    overhead_bytes: int
    verify_s: float
    verify_j: float


def bundle_cost(model_bytes: int, target: str, mcu: McuProfile) -> BundleCost:
    """Bytes a signed bundle adds to a ``model_bytes`` model, and the device's check of it:
    one Ed25519 verification plus SHA-256 over the model."""
    if isinstance(model_bytes, bool) or not isinstance(model_bytes, int) or model_bytes < 0:
        raise ValueError(f"model_bytes must be an integer >= 0, got {model_bytes!r}")
    signed = sign_bundle(bytes(model_bytes), 1, target, Identity.generate("cost-model"))
    cycles = bundle_check_cycles(model_bytes)
    return BundleCost(bundle_overhead_bytes(signed), _seconds(cycles, mcu), _joules(cycles, mcu))


def bundle_check_cycles(model_bytes: int) -> float:
    """Device cycles to check a bundle of a ``model_bytes`` model: Ed25519 verify + SHA-256."""
    return ED25519_VERIFY_CYCLES + SHA256_CYCLES_PER_BYTE * model_bytes
