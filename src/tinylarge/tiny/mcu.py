"""Microcontroller profiles: clock, memories, power and int8 throughput, each with its source.

The built-in profiles are the rows of ``mcu_profiles.toml`` beside this module (package data),
validated by `McuProfile` on import. Their figures come from measured results (the MLPerf Tiny
v0.5 and v1.0 results, github.com/mlcommons/tiny_results_v0.5 and tiny_results_v1.0; the
TinyEngine README, github.com/mit-han-lab/tinyengine) and vendor datasheets; the file's comments
cite each figure, and a profile's ``source`` says plainly which figures are estimates.

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

from tinylarge.tables import load_table


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
        Where the figures come from, and which of them are estimates.
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


#: Runtime name of the profiles that run this project's generated C (`tinylarge.tiny.codegen`);
#: `tinylarge.tiny.footprint` counts their flash without an interpreter.
GENERATED_C_RUNTIME = "tinylarge generated C"
#: The package data file holding the built-in profiles.
PROFILES_FILE = "mcu_profiles.toml"


class UnknownMcuError(KeyError):
    """An MCU name that is neither built in nor among the custom profiles."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: Built-in profiles by name (read-only), loaded from `PROFILES_FILE`. The seven boards use an
#: optimized-kernel runtime (CMSIS-NN or its vendor equivalent); ``*_c``, ``*_tflm_ref``,
#: ``*_xcubeai`` and ``*_tinyengine`` variants carry the other runtimes of the same board.
MCU_PROFILES: Mapping[str, McuProfile] = MappingProxyType(
    load_table("tinylarge.tiny", PROFILES_FILE, McuProfile)
)


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
