"""The draft LM on microcontrollers: flash, RAM, MACs, latency and energy against numbers
worked out by hand from the architecture and the board rows."""

from __future__ import annotations

import pytest
import torch

from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.tiny.lm_footprint import lm_flash_bytes, lm_mcu_cost, lm_mcu_table
from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile


def test_the_draft_on_the_mlperf_reference_board_by_hand() -> None:
    draft = lm_architecture("draft", 1024)  # d 48, 3 layers, context 128
    cost = lm_mcu_cost(draft, "stm32l4r5", context=128)
    # int8 matrices 1024*48 + 128*48 + 3*12*48^2 = 138,240 B; float32 row scales
    # (1024 + 128 + 3*9*48 = 2,448), int32 biases (3*9*48 = 1,296) and LayerNorm
    # (3*4*48 + 2*48 = 672): 4 * 4,416 = 17,664 B
    assert cost.flash_bytes == 138_240 + 17_664 == 155_904
    assert cost.kv_cache_bytes == 2 * 3 * 128 * 48 == 36_864
    assert cost.activation_bytes == 9 * 48 + 4 * 128 + 4 * 1024 == 5_040
    assert cost.ram_bytes == 41_904
    assert cost.macs == 168_960
    # 120 MHz, 3.7 cycles/MAC, 46 mW
    assert cost.latency_s == pytest.approx(168_960 * 3.7 / 120e6) == pytest.approx(5.2096e-3)
    assert cost.energy_j == pytest.approx(0.046 * 5.2096e-3)
    assert cost.tokens_per_s == pytest.approx(1 / 5.2096e-3)
    assert cost.fits


def test_weights_in_flash_count_every_parameter_once() -> None:
    for size in ("draft", "target"):
        arch = lm_architecture(size, 1024)
        parameters = OurLanguageModel(CausalTransformer(arch)).parameter_count
        scales = arch.vocab_size + arch.context + arch.layers * 9 * arch.d_model
        matrices = (
            arch.vocab_size + arch.context
        ) * arch.d_model + 12 * arch.layers * arch.d_model**2
        small = parameters - matrices  # biases and LayerNorm, 4 bytes each
        assert lm_flash_bytes(arch) == matrices + 4 * (scales + small)


def test_which_boards_fit() -> None:
    torch.manual_seed(0)
    draft = OurLanguageModel(CausalTransformer(lm_architecture("draft", 1024)))
    rows = lm_mcu_table(draft, 128)
    assert [r.mcu for r in rows] == list(MCU_PROFILES)
    assert all(r.fits for r in rows)
    target = lm_mcu_table(lm_architecture("target", 1024), 128)
    assert lm_flash_bytes(lm_architecture("target", 1024)) == 2_982_912
    assert {r.mcu for r in target if r.fits} == {"esp32s3"}  # the only board with 4 MiB flash
    tiny = McuProfile(part="p", core="c", runtime="r", clock_hz=1e6, sram_bytes=40_000,
                      flash_bytes=10**6, active_power_w=0.01, cycles_per_mac=2.0,
                      source="s")  # fmt: skip
    cost = lm_mcu_cost(draft, tiny, 128)
    assert cost.mcu == "custom" and cost.fits_flash and not cost.fits_sram
    assert lm_mcu_cost(draft, tiny, 64).fits_sram  # KV cache halves: 18,432 + 4,752 B


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(ValueError, match="needs one of tinylarge's transformer LMs"):
        lm_mcu_cost("draft", "stm32l4r5")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown MCU 'z80'"):
        lm_mcu_cost(lm_architecture("draft", 1024), "z80")
    with pytest.raises(ValueError, match="context_length must lie in"):
        lm_mcu_cost(lm_architecture("draft", 1024), "stm32l4r5", 129)
