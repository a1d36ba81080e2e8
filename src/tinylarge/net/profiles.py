"""Radio profiles: the carrier, bandwidth, powers, antennas and numerology of one radio access.

Figures come from ``shared/reference/radio.md`` ("radio.md" below); a profile's ``source``
names its radio.md row and says plainly which figures are estimates (radio.md gives ranges or
nothing). Deployment figures (scenario, base-station height, cell radius) come from the
3GPP TR 38.901 evaluation scenarios (Table 7.2-1: UMa ISD 500 m, hBS 25 m; UMi street canyon
ISD 200 m, hBS 10 m; InH office ISD 20 m, hBS 3 m); the cell radius of a hexagonal layout is
ISD / sqrt(3).

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

from tinylarge.net.link import CQI_TABLES, SHANNON_SNR_MIN_DB, thermal_noise_dbm

#: Sub-carrier spacing 15 x 2^mu kHz has slot 1 / 2^mu ms (radio.md, "NR numerology").
_MS = 1e-3


def slot_duration_s(mu: int) -> float:
    """NR slot duration for numerology ``mu`` (SCS 15 x 2^mu kHz), s (radio.md)."""
    return _MS * 0.5**mu


def _hex_cell_radius_m(isd_m: float) -> float:
    """Circumradius of a hexagonal cell in a layout with inter-site distance ``isd_m``."""
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


# --- Deployment (TR 38.901 Table 7.2-1; TR 38.913 for massive-connection coverage) ------------
UMA_BS_HEIGHT_M = 25.0
UMI_BS_HEIGHT_M = 10.0
INH_BS_HEIGHT_M = 3.0
UMA_CELL_RADIUS_M = _hex_cell_radius_m(500.0)
UMI_CELL_RADIUS_M = _hex_cell_radius_m(200.0)
INH_CELL_RADIUS_M = _hex_cell_radius_m(20.0)
#: TR 38.913 "urban coverage for massive connection" ISD 1732 m (as recalled; ESTIMATE).
MMTC_CELL_RADIUS_M = _hex_cell_radius_m(1732.0)

# --- Receiver noise figures --------------------------------------------------------------------
#: Base station (uplink receiver): 5 dB in FR1, 7-10 dB in FR2 and above (radio.md).
BS_NF_FR1_DB = 5.0
BS_NF_FR2_FR3_DB = 7.0
BS_NF_SUB_THZ_DB = 10.0
#: Device (downlink receiver): not in radio.md. ESTIMATES at usual 3GPP evaluation values:
#: 9 dB below 6 GHz, 10 dB in FR2/FR3, 13 dB at sub-THz.
DEVICE_NF_FR1_DB = 9.0
DEVICE_NF_FR2_FR3_DB = 10.0
DEVICE_NF_SUB_THZ_DB = 13.0

# --- Maximum coupling loss (radio.md) ----------------------------------------------------------
NB_IOT_MCL_DB = 164.0
LTE_M_MCL_DB = 155.7

#: Common source notes.
_FR1_GAINS = "device 0 dBi, BS sector 15 dBi (ESTIMATES, typical macro values)"
_NR_SNR = (
    f"min SNR {SHANNON_SNR_MIN_DB:g} dB (TR 36.942 SNR_min, radio.md); up to 8 repetitions "
    "(NR PUSCH aggregation factor)"
)


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
        The radio.md row the figures come from, and which of them are estimates.
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


def _builtin_profiles() -> dict[str, RadioProfile]:
    fr1_macro = {
        "device_tx_power_dbm": 23.0,
        "bs_noise_figure_db": BS_NF_FR1_DB,
        "device_noise_figure_db": DEVICE_NF_FR1_DB,
        "device_antenna_gain_dbi": 0.0,
        "bs_antenna_gain_dbi": 15.0,
        "scenario": "uma",
        "bs_height_m": UMA_BS_HEIGHT_M,
    }
    nb_iot_bw, lte_m_bw = 180e3, 1.4e6
    return {
        "nb_iot": RadioProfile(
            **fr1_macro,
            carrier_ghz=0.9,
            uplink_bandwidth_hz=nb_iot_bw,
            downlink_bandwidth_hz=nb_iot_bw,
            bs_tx_power_dbm=43.0,
            max_spectral_efficiency=1.0,
            cqi_table="64qam",
            slot_s=slot_duration_s(0),
            min_snr_db=snr_at_mcl_db(23.0, NB_IOT_MCL_DB, nb_iot_bw, BS_NF_FR1_DB),
            max_repetitions=128,
            cell_radius_m=MMTC_CELL_RADIUS_M,
            source="radio.md row NB-IoT: 0.9 GHz, 180 kHz, 23 dBm (power class 3), 15 kHz / 1 ms, "
            "~1 b/s/Hz (QPSK; the 64QAM CQI table capped there tops at CQI 5, 0.877 b/s/Hz = "
            "158 kb/s, matching Rel-14 peak UL ~159 kb/s); min SNR derived from MCL 164 dB over "
            "180 kHz with BS NF 5 dB; 128 NPUSCH repetitions (3GPP maximum). ESTIMATES: BS "
            f"43 dBm (stand-alone carrier), {_FR1_GAINS}, device NF 9 dB, cell radius 1 km "
            "(ISD 1732 m, TR 38.913 massive-connection coverage)",
        ),
        "lte_m": RadioProfile(
            **fr1_macro,
            carrier_ghz=0.9,
            uplink_bandwidth_hz=lte_m_bw,
            downlink_bandwidth_hz=lte_m_bw,
            bs_tx_power_dbm=46.0,
            max_spectral_efficiency=1.3,
            cqi_table="64qam",
            slot_s=slot_duration_s(0),
            min_snr_db=snr_at_mcl_db(23.0, LTE_M_MCL_DB, lte_m_bw, BS_NF_FR1_DB),
            max_repetitions=2048,
            cell_radius_m=MMTC_CELL_RADIUS_M,
            source="radio.md row LTE-M (Cat-M1): 0.9 GHz, 1.4 MHz, 23 dBm, 15 kHz / 1 ms, "
            "~1.3 b/s/Hz (peak ~1 Mb/s is lower: control overhead and half-duplex timing are "
            "not modelled); min SNR derived from MCL 155.7 dB over 1.4 MHz with BS NF 5 dB; "
            "2048 PUSCH repetitions (CE mode B maximum). ESTIMATES: BS 46 dBm, "
            f"{_FR1_GAINS}, device NF 9 dB, cell radius 1 km (ISD 1732 m, TR 38.913)",
        ),
        "redcap": RadioProfile(
            **fr1_macro,
            carrier_ghz=3.5,
            uplink_bandwidth_hz=20e6,
            downlink_bandwidth_hz=20e6,
            bs_tx_power_dbm=46.0,
            max_spectral_efficiency=CQI_TABLES["64qam"].efficiency[-1],
            cqi_table="64qam",
            slot_s=slot_duration_s(1),
            min_snr_db=SHANNON_SNR_MIN_DB,
            max_repetitions=8,
            cell_radius_m=UMA_CELL_RADIUS_M,
            source="radio.md row NR RedCap: 3.5 GHz, 20 MHz, 23 dBm, 30 kHz / 0.5 ms, 64QAM UL "
            f"(CQI table 1, 5.5547 b/s/Hz); {_NR_SNR}; UMa ISD 500 m. ESTIMATES: BS 46 dBm "
            f"per 20 MHz, {_FR1_GAINS}, device NF 9 dB",
        ),
        "embb_fr1": RadioProfile(
            **fr1_macro,
            carrier_ghz=3.5,
            uplink_bandwidth_hz=100e6,
            downlink_bandwidth_hz=100e6,
            bs_tx_power_dbm=53.0,
            max_spectral_efficiency=CQI_TABLES["256qam"].efficiency[-1],
            cqi_table="256qam",
            slot_s=slot_duration_s(1),
            min_snr_db=SHANNON_SNR_MIN_DB,
            max_repetitions=8,
            cell_radius_m=UMA_CELL_RADIUS_M,
            source="radio.md row eMBB FR1: 3.5 GHz, 100 MHz, 23 dBm, 30 kHz / 0.5 ms, "
            f"7.4063 b/s/Hz (TS 38.214 Table 5.2.2.1-3); {_NR_SNR}; UMa ISD 500 m. "
            f"ESTIMATES: BS 53 dBm (46 dBm per 20 MHz scaled to 100 MHz), {_FR1_GAINS}, "
            "device NF 9 dB",
        ),
        "fr2_mmwave": RadioProfile(
            carrier_ghz=28.0,
            uplink_bandwidth_hz=400e6,
            downlink_bandwidth_hz=400e6,
            device_tx_power_dbm=23.0,
            bs_tx_power_dbm=43.0,
            bs_noise_figure_db=BS_NF_FR2_FR3_DB,
            device_noise_figure_db=DEVICE_NF_FR2_FR3_DB,
            device_antenna_gain_dbi=10.0,
            bs_antenna_gain_dbi=20.0,
            max_spectral_efficiency=CQI_TABLES["64qam"].efficiency[-1],
            cqi_table="64qam",
            slot_s=slot_duration_s(3),
            min_snr_db=SHANNON_SNR_MIN_DB,
            max_repetitions=8,
            scenario="umi",
            bs_height_m=UMI_BS_HEIGHT_M,
            cell_radius_m=UMI_CELL_RADIUS_M,
            source="radio.md row FR2 mmWave: 28 GHz, 400 MHz, 23 dBm + array gain, 120 kHz / "
            "0.125 ms, 5.5547 b/s/Hz (64QAM table); array gains at the low end of radio.md's "
            "UE 10-15 dBi / gNB 20-25 dBi; BS NF 7 dB (radio.md 7-10 dB); "
            f"{_NR_SNR}; UMi ISD 200 m. ESTIMATES: BS 43 dBm, device NF 10 dB",
        ),
        "fr3": RadioProfile(
            carrier_ghz=10.0,
            uplink_bandwidth_hz=400e6,
            downlink_bandwidth_hz=400e6,
            device_tx_power_dbm=23.0,
            bs_tx_power_dbm=46.0,
            bs_noise_figure_db=BS_NF_FR2_FR3_DB,
            device_noise_figure_db=DEVICE_NF_FR2_FR3_DB,
            device_antenna_gain_dbi=5.0,
            bs_antenna_gain_dbi=20.0,
            max_spectral_efficiency=CQI_TABLES["256qam"].efficiency[-1],
            cqi_table="256qam",
            slot_s=slot_duration_s(2),
            min_snr_db=SHANNON_SNR_MIN_DB,
            max_repetitions=8,
            scenario="uma",
            bs_height_m=UMA_BS_HEIGHT_M,
            cell_radius_m=UMA_CELL_RADIUS_M,
            source="radio.md row FR3 (6G candidate): 7-15 GHz / 200-400 MHz, 10 GHz and 400 MHz "
            "taken; 23 dBm + array gain, 60 kHz / 0.25 ms, 7.4063 b/s/Hz; BS NF 7 dB (radio.md "
            f"7-10 dB above FR1); {_NR_SNR}; UMa ISD 500 m. ESTIMATES (radio.md gives no "
            "figure): device array 5 dBi, gNB array 20 dBi, BS 46 dBm, device NF 10 dB",
        ),
        "sub_thz": RadioProfile(
            carrier_ghz=140.0,
            uplink_bandwidth_hz=2e9,
            downlink_bandwidth_hz=2e9,
            device_tx_power_dbm=15.0,
            bs_tx_power_dbm=30.0,
            bs_noise_figure_db=BS_NF_SUB_THZ_DB,
            device_noise_figure_db=DEVICE_NF_SUB_THZ_DB,
            device_antenna_gain_dbi=15.0,
            bs_antenna_gain_dbi=25.0,
            max_spectral_efficiency=CQI_TABLES["64qam"].efficiency[-1],
            cqi_table="64qam",
            slot_s=slot_duration_s(6),
            min_snr_db=SHANNON_SNR_MIN_DB,
            max_repetitions=8,
            scenario="inh",
            bs_height_m=INH_BS_HEIGHT_M,
            cell_radius_m=INH_CELL_RADIUS_M,
            source="radio.md row sub-THz (6G): 140 GHz, 2-10 GHz (2 GHz taken), 10-20 dBm "
            "(15 dBm taken) + array gain, 960 kHz SCS (slot 15.625 us), 5.5547 b/s/Hz, short "
            "range (InH office, ISD 20 m; TR 38.901 is specified up to 100 GHz, so its InH "
            "path loss is extrapolated); BS NF 10 dB (radio.md 7-10 dB). ESTIMATES: arrays "
            "15 dBi device / 25 dBi BS (top of radio.md's FR2 ranges), BS 30 dBm, device NF "
            f"13 dB; {_NR_SNR}",
        ),
    }


class UnknownRadioProfileError(KeyError):
    """A radio profile name that is neither built in nor among the custom profiles."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: Built-in profiles by name (read-only), from narrowband IoT to sub-THz.
RADIO_PROFILES: Mapping[str, RadioProfile] = MappingProxyType(_builtin_profiles())


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
