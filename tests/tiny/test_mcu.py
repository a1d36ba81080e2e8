"""MCU profiles: the data file's rows against published figures, validation, lookup errors."""

from __future__ import annotations

from importlib import resources

import pytest
from pydantic import ValidationError

from tinylarge.tables import TableError, parse_table
from tinylarge.tiny.mcu import (
    GENERATED_C_RUNTIME,
    MCU_PROFILES,
    PROFILES_FILE,
    McuProfile,
    UnknownMcuError,
    mcu_profile,
)

KIB, MIB = 1024, 1024 * 1024

NAMES = (
    "stm32l4r5", "stm32l4r5_c", "stm32l4r5_tflm_ref", "stm32l4r5_xcubeai", "stm32h7a3",
    "stm32h743", "stm32h743_tflm_ref", "stm32h743_xcubeai", "stm32h743_tinyengine", "stm32u575",
    "nrf52840", "esp32s3", "rp2040",
)  # fmt: skip

# name: (clock Hz, SRAM B, flash B) from the datasheets (the boards cited in mcu_profiles.toml).
BOARDS = {
    "stm32l4r5": (120e6, 640 * KIB, 2 * MIB),
    "stm32h7a3": (280e6, 1400 * KIB, 2 * MIB),
    "stm32h743": (480e6, 1 * MIB, 2 * MIB),
    "stm32u575": (160e6, 786 * KIB, 2 * MIB),
    "nrf52840": (64e6, 256 * KIB, 1 * MIB),
    "esp32s3": (240e6, 512 * KIB, 4 * MIB),
    "rp2040": (133e6, 264 * KIB, 2 * MIB),
}

VALID = {
    "part": "my board",
    "core": "Cortex-M4F",
    "runtime": "CMSIS-NN",
    "clock_hz": 80e6,
    "sram_bytes": 128 * KIB,
    "flash_bytes": 512 * KIB,
    "active_power_w": 0.02,
    "cycles_per_mac": 4.0,
    "source": "my own measurement",
}


def test_every_row_of_the_data_file_loads_in_file_order() -> None:
    assert tuple(MCU_PROFILES) == NAMES
    assert all(isinstance(p, McuProfile) for p in MCU_PROFILES.values())
    text = resources.files("tinylarge.tiny").joinpath(PROFILES_FILE).read_text(encoding="utf-8")
    assert parse_table(text, PROFILES_FILE, McuProfile) == dict(MCU_PROFILES)


def test_rows_field_by_field() -> None:
    # Written out here, independently of the data file; floats compared exactly (==).
    assert MCU_PROFILES["stm32l4r5"].model_dump() == {
        "part": "NUCLEO-L4R5ZI (STM32L4R5, MLPerf Tiny reference board)",
        "core": "Cortex-M4F",
        "runtime": "microTVM + CMSIS-NN",
        "clock_hz": 120e6,
        "sram_bytes": 640 * KIB,
        "flash_bytes": 2 * MIB,
        "active_power_w": (40e-3 + 52e-3) / 2,
        "cycles_per_mac": 3.7,
        "source": MCU_PROFILES["stm32l4r5"].source,
    }
    assert MCU_PROFILES["stm32l4r5"].source.startswith("Measured throughput: Cortex-M4 @ 120 MHz")
    # Sources cite public material, never files users of the package do not have.
    assert not any(".md" in profile.source for profile in MCU_PROFILES.values())
    u575 = MCU_PROFILES["stm32u575"]
    assert u575.cycles_per_mac == 3.7 * ((44.1e-3 * 160e6) / (75e-3 * 120e6))
    assert (u575.core, u575.runtime, u575.active_power_w) == ("Cortex-M33", "CMSIS-NN", 25.8e-3)
    rp2040 = MCU_PROFILES["rp2040"]
    assert (rp2040.cycles_per_mac, rp2040.active_power_w) == (6.8 * 2.0, 25e-3 * 3.3)
    assert MCU_PROFILES["stm32h743_tflm_ref"].active_power_w == (250e-3 + 300e-3) / 2
    assert MCU_PROFILES["stm32h743_tflm_ref"].cycles_per_mac == 46.0
    assert MCU_PROFILES["nrf52840"].active_power_w == (10e-3 + 20e-3) / 2
    generated = MCU_PROFILES["stm32l4r5_c"]
    assert (generated.runtime, generated.cycles_per_mac) == (GENERATED_C_RUNTIME, 16.5)


def test_runtime_variants_share_their_board() -> None:
    board_fields = ("part", "core", "clock_hz", "sram_bytes", "flash_bytes", "active_power_w")
    for name, profile in MCU_PROFILES.items():
        base = MCU_PROFILES[name.split("_")[0]]
        assert [getattr(profile, f) for f in board_fields] == [
            getattr(base, f) for f in board_fields
        ], name


def _toml_row(name: str, fields: dict[str, object]) -> str:
    """``[name]`` and one ``key = value`` line per field (strings quoted, numbers as repr)."""
    lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v!r}" for k, v in fields.items()]
    return "\n".join([f"[{name}]", *lines, ""])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clock_hz": -1.0}, "clock_hz = -1.0: Input should be greater than 0"),
        (
            {"sram_bytes": "640 KB"},
            "sram_bytes = '640 KB': Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        ({"clock_mhz": 120}, "clock_mhz = 120: Extra inputs are not permitted"),
    ],
)
def test_bad_row_names_the_file_the_row_and_the_field(
    change: dict[str, object], message: str
) -> None:
    text = _toml_row("good", VALID) + _toml_row("mine", {**VALID, **change})
    with pytest.raises(TableError) as info:
        parse_table(text, PROFILES_FILE, McuProfile)
    assert str(info.value) == f"{PROFILES_FILE}: row [mine] is not a valid McuProfile: {message}"


def test_bad_table_files() -> None:
    with pytest.raises(TableError, match=r"mcu_profiles\.toml: not valid TOML"):
        parse_table("[mine\n", PROFILES_FILE, McuProfile)
    with pytest.raises(TableError, match="'clock_hz' must be a table"):
        parse_table("clock_hz = 1.0\n", PROFILES_FILE, McuProfile)
    without_source = {k: v for k, v in VALID.items() if k != "source"}
    with pytest.raises(TableError, match=r"row \[mine\] .*: source: Field required$"):
        parse_table(_toml_row("mine", without_source), PROFILES_FILE, McuProfile)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_figures_match_mcu_md(name: str) -> None:
    profile = MCU_PROFILES[name]
    assert (profile.clock_hz, profile.sram_bytes, profile.flash_bytes) == BOARDS[name]


def test_cycles_per_mac_rows() -> None:
    # Measured figures: M4 CMSIS-NN 3.7 (MLPerf Tiny v1.0 OctoML), M7 CMSIS-NN 4.6
    # (TinyEngine README); M4 applies to the nRF52840 too.
    assert MCU_PROFILES["stm32l4r5"].cycles_per_mac == 3.7
    assert MCU_PROFILES["nrf52840"].cycles_per_mac == 3.7
    assert MCU_PROFILES["stm32h743"].cycles_per_mac == 4.6
    assert MCU_PROFILES["stm32h7a3"].cycles_per_mac == 4.6
    assert MCU_PROFILES["stm32l4r5_tflm_ref"].cycles_per_mac == 6.8
    # M33 estimate by hand: 3.7 x (44.1 ms x 160 MHz) / (75 ms x 120 MHz) = 3.7 x 7056 / 9000.
    assert MCU_PROFILES["stm32u575"].cycles_per_mac == pytest.approx(2.90078, rel=1e-5)
    # M0+ estimate: TFLM reference on M4 (6.8) x 2.
    assert MCU_PROFILES["rp2040"].cycles_per_mac == pytest.approx(13.6)


def test_power_figures() -> None:
    assert MCU_PROFILES["stm32l4r5"].active_power_w == pytest.approx(0.046)  # 40-52 mW midpoint
    assert MCU_PROFILES["stm32h7a3"].active_power_w == pytest.approx(0.1627)
    assert MCU_PROFILES["stm32u575"].active_power_w == pytest.approx(0.0258)
    assert MCU_PROFILES["stm32h743"].active_power_w == pytest.approx(0.275)


@pytest.mark.parametrize("name", ["stm32u575", "esp32s3", "rp2040", "nrf52840", "stm32h743"])
def test_estimates_are_labelled(name: str) -> None:
    assert "ESTIMATE" in MCU_PROFILES[name].source


@pytest.mark.parametrize(
    ("name", "macs", "measured_s"),
    [
        # MLPerf Tiny ResNet-8 (~12.5 M MACs) on the L4R5 @ 120 MHz (MLPerf Tiny v0.5, v1.0).
        ("stm32l4r5", 12.5e6, 0.390),
        ("stm32l4r5_tflm_ref", 12.5e6, 0.704),
        ("stm32l4r5_xcubeai", 12.5e6, 0.227),
        # mcunet-in2 (67.3 M MACs) on the H743 @ 480 MHz (TinyEngine README).
        ("stm32h743", 67.3e6, 0.642),
        ("stm32h743_tflm_ref", 67.3e6, 6.463),
        ("stm32h743_xcubeai", 67.3e6, 0.351),
        ("stm32h743_tinyengine", 67.3e6, 0.280),
    ],
)
def test_throughput_reproduces_measured_latency(name: str, macs: float, measured_s: float) -> None:
    assert macs / MCU_PROFILES[name].macs_per_s == pytest.approx(measured_s, rel=0.05)


def test_profiles_are_read_only() -> None:
    with pytest.raises(TypeError):
        MCU_PROFILES["x"] = MCU_PROFILES["rp2040"]  # type: ignore[index]
    with pytest.raises(ValidationError):
        MCU_PROFILES["rp2040"].clock_hz = 1.0  # type: ignore[misc]


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownMcuError) as info:
        mcu_profile("stm32f0")
    message = str(info.value)
    assert message.startswith("unknown MCU 'stm32f0'; known: ")
    for name in BOARDS:
        assert name in message
    assert isinstance(info.value, KeyError)


def test_custom_profiles_from_dict() -> None:
    mine = McuProfile.model_validate(VALID)
    assert mcu_profile("mine", {"mine": mine}) is mine
    assert mcu_profile("nrf52840", {"mine": mine}) is MCU_PROFILES["nrf52840"]
    # a custom profile of a built-in name wins
    assert mcu_profile("nrf52840", {"nrf52840": mine}) is mine
    with pytest.raises(UnknownMcuError, match="mine"):
        mcu_profile("other", {"mine": mine})


@pytest.mark.parametrize(
    "field", ["clock_hz", "sram_bytes", "flash_bytes", "active_power_w", "cycles_per_mac"]
)
@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_numbers_rejected(field: str, bad: int) -> None:
    with pytest.raises(ValidationError, match=field):
        McuProfile.model_validate({**VALID, field: bad})


def test_unknown_and_missing_keys_rejected() -> None:
    with pytest.raises(ValidationError, match="clock_mhz"):
        McuProfile.model_validate({**VALID, "clock_mhz": 80})
    without_source = {k: v for k, v in VALID.items() if k != "source"}
    with pytest.raises(ValidationError, match="source"):
        McuProfile.model_validate(without_source)
    with pytest.raises(ValidationError, match="clock_hz"):
        McuProfile.model_validate({**VALID, "clock_hz": float("inf")})
