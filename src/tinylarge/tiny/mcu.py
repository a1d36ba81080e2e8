"""Microcontroller profiles: clock, memories, power and int8 throughput, each with its source.

Every figure comes from ``shared/reference/mcu.md`` ("mcu.md" below), which collects measured
results (MLPerf Tiny result logs, the TinyEngine/MCUNet README, vendor datasheets). A profile's
``source`` names the row(s) it was built from and says plainly which figures are estimates.

Throughput is an *effective whole-network* figure, ``cycles_per_mac``: measured latency x clock
/ MACs of a real network on a real board. It already contains everything that is not a MAC
(pooling, requantization, interpreter dispatch, memory stalls), which is why it is 2-20x the
instruction-set peak. Runtimes matter as much as cores, so each profile names its runtime.

Units: ``clock_hz`` in Hz, ``sram_bytes`` / ``flash_bytes`` in bytes (1 KB = 1,024 B,
1 MB = 1,048,576 B, as in vendor datasheets), ``active_power_w`` in W while running inference,
``cycles_per_mac`` in core clock cycles per int8 multiply-accumulate.

User profiles are plain data: ``McuProfile.model_validate({...})`` (or ``McuProfile(**d)``)
checks types, rejects unknown keys and requires every number to be positive.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

KIB = 1024
MIB = 1024 * 1024


class McuProfile(BaseModel):
    """One board running one inference runtime.

    Attributes
    ----------
    part : str
        The chip or board, e.g. ``"NUCLEO-L4R5ZI"``.
    core : str
        The CPU core, e.g. ``"Cortex-M4F"``.
    runtime : str
        The inference runtime that ``cycles_per_mac`` was measured (or estimated) with.
    clock_hz : float
        Core clock during inference, Hz.
    sram_bytes : int
        On-chip SRAM available to the application, bytes.
    flash_bytes : int
        Program/model storage (on-chip or execute-in-place), bytes.
    active_power_w : float
        Board power while running inference, W.
    cycles_per_mac : float
        Effective whole-network cycles per int8 MAC.
    source : str
        Which mcu.md row(s) the figures come from, and which of them are estimates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    part: str = Field(min_length=1)
    core: str = Field(min_length=1)
    runtime: str = Field(min_length=1)
    clock_hz: float = Field(gt=0, allow_inf_nan=False)
    sram_bytes: int = Field(gt=0)
    flash_bytes: int = Field(gt=0)
    active_power_w: float = Field(gt=0, allow_inf_nan=False)
    cycles_per_mac: float = Field(gt=0, allow_inf_nan=False)
    source: str = Field(min_length=1)

    @property
    def macs_per_s(self) -> float:
        """Effective int8 throughput, MAC/s (``clock_hz / cycles_per_mac``)."""
        return self.clock_hz / self.cycles_per_mac


# --- Effective throughput rows of mcu.md (cycles per MAC, whole network) -----------------------
#: Cortex-M4 @ 120 MHz (NUCLEO-L4R5ZI), MLPerf Tiny ResNet-8 (~12.5 M MACs), TFLM reference
#: kernels: 704 ms (MLPerf Tiny v0.5 reference submission). Derived in mcu.md.
M4_TFLM_REFERENCE_CYCLES_PER_MAC = 6.8
#: Same board and network, microTVM + CMSIS-NN: 390 ms (MLPerf Tiny v1.0, OctoML). Derived.
M4_CMSIS_NN_CYCLES_PER_MAC = 3.7
#: Same board and network, X-CUBE-AI: 227 ms (MLPerf Tiny v1.0, ST). Derived.
M4_X_CUBE_AI_CYCLES_PER_MAC = 2.2
#: Cortex-M7 @ 480 MHz (STM32H743), mcunet-in2 (67.3 M MACs), TFLM reference: 6,463 ms
#: (TinyEngine README). Derived.
M7_TFLM_REFERENCE_CYCLES_PER_MAC = 46.0
#: Same, CMSIS-NN: 642 ms (TinyEngine README). Derived.
M7_CMSIS_NN_CYCLES_PER_MAC = 4.6
#: Same, X-CUBE-AI: 351 ms (TinyEngine README). Derived.
M7_X_CUBE_AI_CYCLES_PER_MAC = 2.5
#: Same, TinyEngine (code generator): 280 ms (TinyEngine README). Derived.
M7_TINYENGINE_CYCLES_PER_MAC = 2.0

#: This project's generated C (`tinylarge.tiny.codegen`: portable C, TFLM reference
#: arithmetic, no SIMD) on a Cortex-M4: 16.5 instructions per MAC counted under QEMU
#: (mps2-an386) for the smoke preset's tiny CNN (47,712 MACs), 2026-12-02. A Cortex-M4
#: instruction takes at least one cycle (Cortex-M4 TRM, DDI 0439), so this is a LOWER BOUND
#: on cycles per MAC. Where a run measured its own model, `footprint(..., measured=...)` uses
#: that model's flash, SRAM and instruction count instead.
M4_GENERATED_C_CYCLES_PER_MAC = 16.5
GENERATED_C_RUNTIME = "tinylarge generated C"
GENERATED_C_SOURCE = (
    "cycles/MAC is a LOWER BOUND: 16.5 instructions/MAC of tinylarge's generated C counted "
    "under QEMU (smoke tiny CNN), at least 1 cycle per instruction (Cortex-M4 TRM)"
)

# --- MLPerf Tiny v1.0 keyword spotting with X-CUBE-AI (mcu.md, "MLPerf Tiny measured results") --
# Same network and runtime on two boards gives the cycles ratio between their cores/memories.
_KWS_X_CUBE_AI_L4R5_S = 75e-3  # STM32L4R5 (Cortex-M4F) @ 120 MHz
_KWS_X_CUBE_AI_U575_S = 44.1e-3  # STM32U575 (Cortex-M33) @ 160 MHz
_L4R5_CLOCK_HZ = 120e6
_U575_CLOCK_HZ = 160e6
#: Cycles the U575 (Cortex-M33) needs per cycle the L4R5 (Cortex-M4F) needs on the same network
#: and runtime: (44.1 ms x 160 MHz) / (75 ms x 120 MHz) = 0.784. Derived from mcu.md.
M33_OVER_M4_CYCLE_RATIO = (_KWS_X_CUBE_AI_U575_S * _U575_CLOCK_HZ) / (
    _KWS_X_CUBE_AI_L4R5_S * _L4R5_CLOCK_HZ
)
#: Cortex-M33 with CMSIS-NN: ESTIMATE = M4 CMSIS-NN (3.7) x M33/M4 cycle ratio (0.784) = 2.9.
#: The M33 runs the same DSP-extension (SMLAD) CMSIS-NN code path as the M4.
M33_CMSIS_NN_CYCLES_PER_MAC = M4_CMSIS_NN_CYCLES_PER_MAC * M33_OVER_M4_CYCLE_RATIO
#: Xtensa LX7 (ESP32-S3) with ESP-NN: ESTIMATE, no measured row in mcu.md. The M4 CMSIS-NN
#: figure is used as a stand-in; ESP-NN's 128-bit SIMD is likely faster, so this is conservative.
LX7_ESP_NN_CYCLES_PER_MAC = M4_CMSIS_NN_CYCLES_PER_MAC
#: Factor for ARMv6-M (Cortex-M0+): no DSP/SIMD extension and no multiply-accumulate
#: instruction (MULS + ADDS per MAC), so CMSIS-NN falls back to plain C. ESTIMATE.
M0PLUS_OVER_M4_REFERENCE_FACTOR = 2.0
#: Cortex-M0+ (RP2040): ESTIMATE = M4 TFLM reference kernels (6.8) x 2.0 = 13.6.
M0PLUS_CYCLES_PER_MAC = M4_TFLM_REFERENCE_CYCLES_PER_MAC * M0PLUS_OVER_M4_REFERENCE_FACTOR

# --- Power during inference (mcu.md, "Boards") ------------------------------------------------
#: STM32L4R5: 40-52 mW measured (MLPerf Tiny v0.5/v1.0 energy logs); midpoint taken.
L4R5_POWER_W = (40e-3 + 52e-3) / 2
#: STM32H7A3: 162.7 mW measured (MLPerf Tiny v1.0, ST).
H7A3_POWER_W = 162.7e-3
#: STM32H743: ~250-300 mW, datasheet-class ESTIMATE; midpoint taken.
H743_POWER_W = (250e-3 + 300e-3) / 2
#: STM32U575: 25.8 mW measured (MLPerf Tiny v1.0, ST).
U575_POWER_W = 25.8e-3
#: nRF52840: ~10-20 mW ESTIMATE (Nordic product spec: CoreMark + radio at 0 dBm 8.1 mA);
#: midpoint taken.
NRF52840_POWER_W = (10e-3 + 20e-3) / 2
#: ESP32-S3: ~105 mW awake, board measurement NOT under ML load (an estimate for inference).
ESP32S3_POWER_W = 105e-3
#: RP2040: not verified in mcu.md. ESTIMATE: ~25 mA at 3.3 V with one core busy (order of
#: magnitude only).
RP2040_POWER_W = 25e-3 * 3.3


def _builtin_profiles() -> dict[str, McuProfile]:
    l4r5 = {
        "part": "NUCLEO-L4R5ZI (STM32L4R5, MLPerf Tiny reference board)",
        "core": "Cortex-M4F",
        "clock_hz": 120e6,
        "sram_bytes": 640 * KIB,
        "flash_bytes": 2 * MIB,
        "active_power_w": L4R5_POWER_W,
    }
    l4r5_board = (
        "mcu.md Boards row stm32l4r5 (120 MHz, 640 KB SRAM, 2 MB flash; power 40-52 mW "
        "measured in MLPerf Tiny v0.5/v1.0 energy logs, midpoint 46 mW taken)"
    )
    h743 = {
        "part": "NUCLEO-H743ZI (STM32H743)",
        "core": "Cortex-M7",
        "clock_hz": 480e6,
        "sram_bytes": 1 * MIB,
        "flash_bytes": 2 * MIB,
        "active_power_w": H743_POWER_W,
    }
    h743_board = (
        "mcu.md Boards row stm32h743 (480 MHz, 1 MB SRAM, 2 MB flash; power ~250-300 mW is a "
        "datasheet-class ESTIMATE, midpoint 275 mW taken)"
    )
    te = "mcu.md throughput row Cortex-M7 @ 480 MHz (STM32H743), mcunet-in2 (67.3 M MACs)"
    ml = "mcu.md throughput row Cortex-M4 @ 120 MHz (NUCLEO-L4R5ZI), ResNet-8 (~12.5 M MACs)"
    return {
        "stm32l4r5": McuProfile(
            **l4r5,
            runtime="microTVM + CMSIS-NN",
            cycles_per_mac=M4_CMSIS_NN_CYCLES_PER_MAC,
            source=f"{ml}: CMSIS-NN 3.7 cycles/MAC (MLPerf Tiny v1.0 OctoML, 390 ms, derived); "
            f"{l4r5_board}",
        ),
        "stm32l4r5_c": McuProfile(
            **l4r5,
            runtime=GENERATED_C_RUNTIME,
            cycles_per_mac=M4_GENERATED_C_CYCLES_PER_MAC,
            source=f"{GENERATED_C_SOURCE}; {l4r5_board}",
        ),
        "stm32l4r5_tflm_ref": McuProfile(
            **l4r5,
            runtime="TFLite Micro reference kernels",
            cycles_per_mac=M4_TFLM_REFERENCE_CYCLES_PER_MAC,
            source=f"{ml}: TFLM reference 6.8 cycles/MAC (MLPerf Tiny v0.5, 704 ms, derived); "
            f"{l4r5_board}",
        ),
        "stm32l4r5_xcubeai": McuProfile(
            **l4r5,
            runtime="X-CUBE-AI (code generator)",
            cycles_per_mac=M4_X_CUBE_AI_CYCLES_PER_MAC,
            source=f"{ml}: X-CUBE-AI 2.2 cycles/MAC (MLPerf Tiny v1.0 ST, 227 ms, derived); "
            f"{l4r5_board}",
        ),
        "stm32h7a3": McuProfile(
            part="STM32H7A3",
            core="Cortex-M7",
            runtime="CMSIS-NN",
            clock_hz=280e6,
            sram_bytes=1400 * KIB,
            flash_bytes=2 * MIB,
            active_power_w=H7A3_POWER_W,
            cycles_per_mac=M7_CMSIS_NN_CYCLES_PER_MAC,
            source=f"{te}: CMSIS-NN 4.6 cycles/MAC (TinyEngine README, 642 ms, derived; measured "
            "on the H743, applied to the same M7 core); mcu.md Boards row stm32h7a3 (280 MHz, "
            "1.4 MB SRAM taken as 1,400 KiB, 2 MB flash; power 162.7 mW measured, MLPerf Tiny "
            "v1.0 ST, with X-CUBE-AI)",
        ),
        "stm32h743": McuProfile(
            **h743,
            runtime="CMSIS-NN",
            cycles_per_mac=M7_CMSIS_NN_CYCLES_PER_MAC,
            source=f"{te}: CMSIS-NN 4.6 cycles/MAC (TinyEngine README, 642 ms, derived); "
            f"{h743_board}",
        ),
        "stm32h743_tflm_ref": McuProfile(
            **h743,
            runtime="TFLite Micro reference kernels",
            cycles_per_mac=M7_TFLM_REFERENCE_CYCLES_PER_MAC,
            source=f"{te}: TFLM reference 46 cycles/MAC (TinyEngine README, 6,463 ms, "
            f"derived); {h743_board}",
        ),
        "stm32h743_xcubeai": McuProfile(
            **h743,
            runtime="X-CUBE-AI (code generator)",
            cycles_per_mac=M7_X_CUBE_AI_CYCLES_PER_MAC,
            source=f"{te}: X-CUBE-AI 2.5 cycles/MAC (TinyEngine README, 351 ms, derived); "
            f"{h743_board}",
        ),
        "stm32h743_tinyengine": McuProfile(
            **h743,
            runtime="TinyEngine (code generator)",
            cycles_per_mac=M7_TINYENGINE_CYCLES_PER_MAC,
            source=f"{te}: TinyEngine 2.0 cycles/MAC (TinyEngine README, 280 ms, derived); "
            f"{h743_board}",
        ),
        "stm32u575": McuProfile(
            part="STM32U575",
            core="Cortex-M33",
            runtime="CMSIS-NN",
            clock_hz=160e6,
            sram_bytes=786 * KIB,
            flash_bytes=2 * MIB,
            active_power_w=U575_POWER_W,
            cycles_per_mac=M33_CMSIS_NN_CYCLES_PER_MAC,
            source="cycles/MAC is an ESTIMATE (no measured M33 row in mcu.md): M4 CMSIS-NN 3.7 "
            "(MLPerf Tiny v1.0 OctoML) x 0.784, the U575/L4R5 cycle ratio of MLPerf Tiny v1.0 "
            "keyword spotting with X-CUBE-AI (44.1 ms @ 160 MHz vs 75 ms @ 120 MHz) = 2.9; "
            "mcu.md Boards row stm32u575 (160 MHz, 786 KB SRAM, 2 MB flash; power 25.8 mW "
            "measured, MLPerf Tiny v1.0 ST)",
        ),
        "nrf52840": McuProfile(
            part="Arduino Nano 33 BLE Sense (nRF52840)",
            core="Cortex-M4F",
            runtime="CMSIS-NN",
            clock_hz=64e6,
            sram_bytes=256 * KIB,
            flash_bytes=1 * MIB,
            active_power_w=NRF52840_POWER_W,
            cycles_per_mac=M4_CMSIS_NN_CYCLES_PER_MAC,
            source=f"{ml}: CMSIS-NN 3.7 cycles/MAC (MLPerf Tiny v1.0 OctoML; measured on the "
            "L4R5, applied to the same M4 core); mcu.md Boards row nrf52840 (64 MHz, 256 KB "
            "SRAM, 1 MB flash; power ~10-20 mW is an ESTIMATE from the Nordic product spec, "
            "midpoint 15 mW taken)",
        ),
        "esp32s3": McuProfile(
            part="ESP32-S3",
            core="Xtensa LX7 (one of two cores used)",
            runtime="ESP-NN",
            clock_hz=240e6,
            sram_bytes=512 * KIB,
            flash_bytes=4 * MIB,
            active_power_w=ESP32S3_POWER_W,
            cycles_per_mac=LX7_ESP_NN_CYCLES_PER_MAC,
            source="cycles/MAC is an ESTIMATE (no measured LX7 row in mcu.md): the M4 CMSIS-NN "
            "figure 3.7 (MLPerf Tiny v1.0 OctoML) as a conservative stand-in for ESP-NN's SIMD "
            "kernels; mcu.md Boards row esp32s3 (240 MHz, 512 KB SRAM; external flash 4-32 MB, "
            "the smallest 4 MB taken; power ~105 mW awake, measured NOT under ML load, used as "
            "an ESTIMATE)",
        ),
        "rp2040": McuProfile(
            part="Raspberry Pi Pico (RP2040)",
            core="Cortex-M0+ (one of two cores used)",
            runtime="TFLite Micro (CMSIS-NN plain-C path)",
            clock_hz=133e6,
            sram_bytes=264 * KIB,
            flash_bytes=2 * MIB,
            active_power_w=RP2040_POWER_W,
            cycles_per_mac=M0PLUS_CYCLES_PER_MAC,
            source="ESTIMATE throughout (mcu.md: 'not verified; treat as an estimate'): "
            "cycles/MAC = M4 TFLM reference 6.8 (MLPerf Tiny v0.5) x 2 for ARMv6-M (no DSP "
            "extension, no multiply-accumulate instruction) = 13.6; power ~25 mA x 3.3 V "
            "(order of magnitude); mcu.md Boards row rp2040 (133 MHz, 264 KB SRAM, 2 MB QSPI "
            "flash)",
        ),
    }


class UnknownMcuError(KeyError):
    """An MCU name that is neither built in nor among the custom profiles."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: Built-in profiles by name (read-only). The six mcu.md boards use an optimized-kernel runtime
#: (CMSIS-NN or its vendor equivalent); ``*_tflm_ref``, ``*_xcubeai`` and ``*_tinyengine``
#: variants carry the other measured runtimes of the same board.
MCU_PROFILES: Mapping[str, McuProfile] = MappingProxyType(_builtin_profiles())


def mcu_profile(name: str, custom: Mapping[str, McuProfile] | None = None) -> McuProfile:
    """Look up a profile by name; ``custom`` profiles win over built-ins of the same name.

    Parameters
    ----------
    name : str
        A key of ``custom`` or of `MCU_PROFILES`.
    custom : Mapping[str, McuProfile], optional
        User profiles (e.g. from a scenario file).

    Returns
    -------
    McuProfile

    Raises
    ------
    UnknownMcuError
        (a `KeyError`) if ``name`` is unknown; the message lists every known name.
    """
    profiles = {**MCU_PROFILES, **(custom or {})}
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise UnknownMcuError(f"unknown MCU {name!r}; known: {known}")
    return profiles[name]
