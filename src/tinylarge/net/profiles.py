"""Radio profiles: the carrier, bandwidth, powers, antennas and numerology of one radio access.

The built-in profiles are the rows of ``radio_profiles.toml`` beside this module (package data),
validated by `RadioProfile` on import. Their figures come from the 3GPP specifications (TS 36.306
and TS 38.306 device capabilities, TS 38.211 numerology, TS 38.214 CQI tables, TR 36.942 Annex A
link abstraction, TR 45.820 and TR 36.888 coverage targets) and the 6G candidate bands (WRC-23,
ITU-R M.2160); the file's comments cite each figure, and a profile's ``source`` says plainly
which figures are estimates (where the sources give ranges or nothing). Deployment figures
(scenario, base-station height, cell radius) come from the 3GPP TR 38.901 evaluation scenarios
(Table 7.2-1: UMa ISD 500 m, hBS 25 m; UMi street canyon ISD 200 m, hBS 10 m; InH office ISD
20 m, hBS 3 m); the cell radius of a hexagonal layout is ISD / sqrt(3) (`hex_cell_radius_m`).

Units: carrier in GHz, bandwidths in Hz, powers in dBm, noise figures in dB, antenna gains in
dBi, ``max_spectral_efficiency`` in b/s/Hz, ``slot_s`` in s, heights and radii in m.
User profiles are plain data: ``RadioProfile.model_validate({...})`` checks types, rejects
unknown keys and requires finite numbers (positive where a quantity must be).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinylarge.net.link import CQI_TABLES, thermal_noise_dbm
from tinylarge.tables import load_table

#: Sub-carrier spacing 15 x 2^mu kHz has slot 1 / 2^mu ms (3GPP TS 38.211 clauses 4.2, 4.3.2).
_MS = 1e-3
#: The package data file holding the built-in profiles.
PROFILES_FILE = "radio_profiles.toml"


def slot_duration_s(mu: int) -> float:
    """NR slot duration for numerology ``mu`` (SCS 15 x 2^mu kHz), s (3GPP TS 38.211)."""
    return _MS * 0.5**mu


def hex_cell_radius_m(isd_m: float) -> float:
    """Circumradius of a hexagonal cell in a layout with inter-site distance ``isd_m``, m."""
    return isd_m / math.sqrt(3.0)


def snr_at_mcl_db(
    tx_power_dbm: float, mcl_db: float, bandwidth_hz: float, noise_figure_db: float
) -> float:
    """SNR at the maximum coupling loss: P_tx - MCL - thermal noise(B, NF), dB.

    MCL is counted between antenna connectors, so with antenna gains in `link.snr_db` a
    device is in coverage up to path loss MCL + G_tx + G_rx.
    """
    noise = float(thermal_noise_dbm(bandwidth_hz, noise_figure_db))
    return tx_power_dbm - mcl_db - noise


class RadioProfile(BaseModel):
    """One radio access technology as deployed in one cell type.

    Attributes
    ----------
    carrier_ghz : float
        Carrier frequency, GHz (> 0).
    uplink_bandwidth_hz, downlink_bandwidth_hz : float
        Channel bandwidth per direction, Hz (> 0). TDD UL/DL time split is not modelled.
    device_tx_power_dbm, bs_tx_power_dbm : float
        Transmit power, dBm (conducted, before antenna gain).
    bs_noise_figure_db, device_noise_figure_db : float
        Receiver noise figures, dB (>= 0); the BS's applies to the uplink.
    device_antenna_gain_dbi, bs_antenna_gain_dbi : float
        Antenna (array) gains, dBi.
    max_spectral_efficiency : float
        Highest spectral efficiency the radio supports, b/s/Hz (>= CQI 1's 0.1523).
    cqi_table : {"64qam", "256qam"}
        TS 38.214 CQI table (Table 5.2.2.1-2 or 5.2.2.1-3).
    slot_s : float
        Slot (scheduling unit) duration, s (> 0).
    min_snr_db : float
        Outage threshold: below this SNR there is no link, dB.
    max_repetitions : int
        Largest coverage-enhancement repetition factor (power of two; 1 = none); see
        `tinylarge.net.link.spectral_efficiency`.
    scenario : {"uma", "umi", "inh"}
        TR 38.901 scenario the profile is deployed in.
    bs_height_m, cell_radius_m : float
        Base-station antenna height and cell radius, m (> 0).
    source : str
        Where the figures come from, and which of them are estimates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    carrier_ghz: float = Field(gt=0, allow_inf_nan=False)
    uplink_bandwidth_hz: float = Field(gt=0, allow_inf_nan=False)
    downlink_bandwidth_hz: float = Field(gt=0, allow_inf_nan=False)
    device_tx_power_dbm: float = Field(allow_inf_nan=False)
    bs_tx_power_dbm: float = Field(allow_inf_nan=False)
    bs_noise_figure_db: float = Field(ge=0, allow_inf_nan=False)
    device_noise_figure_db: float = Field(ge=0, allow_inf_nan=False)
    device_antenna_gain_dbi: float = Field(allow_inf_nan=False)
    bs_antenna_gain_dbi: float = Field(allow_inf_nan=False)
    max_spectral_efficiency: float = Field(gt=0, allow_inf_nan=False)
    cqi_table: Literal["64qam", "256qam"]
    slot_s: float = Field(gt=0, allow_inf_nan=False)
    min_snr_db: float = Field(allow_inf_nan=False)
    max_repetitions: int = Field(1, ge=1)
    scenario: Literal["uma", "umi", "inh"]
    bs_height_m: float = Field(gt=0, allow_inf_nan=False)
    cell_radius_m: float = Field(gt=0, allow_inf_nan=False)
    source: str = Field("user-defined profile (no source given)", min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RadioProfile:
        if self.max_repetitions & (self.max_repetitions - 1):
            raise ValueError(
                f"max_repetitions must be a power of two (1, 2, 4, ...), got {self.max_repetitions}"
            )
        cqi1 = CQI_TABLES[self.cqi_table].efficiency[0]
        if self.max_spectral_efficiency < cqi1:
            raise ValueError(
                f"max_spectral_efficiency {self.max_spectral_efficiency} b/s/Hz is below CQI 1 of "
                f"the {self.cqi_table} table ({cqi1} b/s/Hz); no CQI would be usable"
            )
        return self

    @property
    def uplink_noise_dbm(self) -> float:
        """Base-station receiver noise over the uplink bandwidth, dBm."""
        return float(thermal_noise_dbm(self.uplink_bandwidth_hz, self.bs_noise_figure_db))

    @property
    def downlink_noise_dbm(self) -> float:
        """Device receiver noise over the downlink bandwidth, dBm."""
        return float(thermal_noise_dbm(self.downlink_bandwidth_hz, self.device_noise_figure_db))


class UnknownRadioProfileError(KeyError):
    """A radio profile name that is neither built in nor among the custom profiles."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: Built-in profiles by name (read-only), from narrowband IoT to sub-THz, loaded from
#: `PROFILES_FILE`.
RADIO_PROFILES: Mapping[str, RadioProfile] = MappingProxyType(
    load_table("tinylarge.net", PROFILES_FILE, RadioProfile)
)


def radio_profile(
    name: str,
    custom: Mapping[str, RadioProfile | Mapping[str, float | int | str]] | None = None,
) -> RadioProfile:
    """Look up a profile by name; ``custom`` profiles win over built-ins of the same name.

    Parameters
    ----------
    name : str
        A key of ``custom`` or of `RADIO_PROFILES`.
    custom : Mapping[str, RadioProfile or Mapping], optional
        User profiles (e.g. a scenario's ``network.custom_profiles``); a mapping value holds
        the fields of `RadioProfile` and is validated.

    Returns
    -------
    RadioProfile

    Raises
    ------
    UnknownRadioProfileError
        (a `KeyError`) if ``name`` is unknown; the message lists every known name.
    pydantic.ValidationError
        If the custom profile named ``name`` is invalid.
    """
    profiles: dict[str, RadioProfile | Mapping[str, float | int | str]] = {
        **RADIO_PROFILES,
        **(custom or {}),
    }
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise UnknownRadioProfileError(f"unknown radio profile {name!r}; known: {known}")
    found = profiles[name]
    return found if isinstance(found, RadioProfile) else RadioProfile.model_validate(found)
