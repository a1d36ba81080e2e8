"""The security layer's device and network costs against wolfSSL's STM32 figures by hand."""

from __future__ import annotations

import pytest

from tinylarge.secure import DeviceHandshake, Identity, Registry, server_accept, sign_bundle
from tinylarge.secure.costs import bundle_cost, protocol_overhead, run_device_id
from tinylarge.tiny.mcu import MCU_PROFILES

L4R5 = MCU_PROFILES["stm32l4r5"]


def test_overhead_on_the_l4r5_matches_the_wolfssl_rows_by_hand() -> None:
    ov = protocol_overhead("device-00042", L4R5)
    assert ov.message_bytes == 3 + 12 + 8 + 16
    # ChaCha20-Poly1305 1.78 MiB/s at 80 MHz; L4R5 at 120 MHz and 46 mW
    # (MLPerf Tiny energy results, midpoint)
    per_byte_s = 1 / (1.78 * 2**20) * 80 / 120
    assert ov.device_s_per_byte == pytest.approx(per_byte_s)
    assert ov.device_j_per_byte == pytest.approx(per_byte_s * 0.046)
    # 2 x X25519 (31.6 ms) + Ed25519 sign (16.0 ms) + verify (36.6 ms) at 80 MHz
    hs_s = (2 * 31.6 + 16.0 + 36.6) * 1e-3 * 80 / 120
    assert ov.session_device_s == pytest.approx(hs_s)
    assert ov.session_device_j == pytest.approx(hs_s * 0.046)
    aes = protocol_overhead("device-00042", L4R5, "aes-256-gcm")
    assert aes.device_s_per_byte == pytest.approx(1 / (3.69 * 2**20) * 80 / 120)


def test_handshake_and_bundle_sizes_are_those_of_real_messages() -> None:
    device, server = Identity.generate("device-00042"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    hello = DeviceHandshake(device).hello()
    reply, _ = server_accept(hello, server, registry)
    ov = protocol_overhead(device.device_id, L4R5)
    assert (ov.session_up_bytes, ov.session_down_bytes) == (len(hello), len(reply))
    model = bytes(range(256)) * 20
    cost = bundle_cost(len(model), "stm32l4r5", L4R5)
    assert cost.overhead_bytes == len(sign_bundle(model, 1, "stm32l4r5", server)) - len(model)
    # Ed25519 verify (36.6 ms at 80 MHz) + SHA-256 at 1,950 KB/s on a 168 MHz Cortex-M4
    cycles = 36.6e-3 * 80e6 + len(model) * 168e6 / 1.95e6
    assert cost.verify_j == pytest.approx(cycles / 120e6 * 0.046)


def test_run_device_ids_are_fixed_width_and_checked() -> None:
    assert run_device_id(7, 100) == "device-00007"
    assert run_device_id(999_999, 1_000_000) == "device-999999"
    with pytest.raises(ValueError, match=r"index must lie in \[0, 10\)"):
        run_device_id(10, 10)
    with pytest.raises(ValueError, match="aead must be one of"):
        protocol_overhead("d", L4R5, "rot13")  # type: ignore[arg-type]
