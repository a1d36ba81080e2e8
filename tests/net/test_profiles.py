"""Radio profiles: the data file's rows against published figures, validation, lookup, link
consistency."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tinylarge.net.link import (
    CQI_TABLES,
    SHANNON_SNR_MIN_DB,
    outage,
    snr_db,
    spectral_efficiency,
)
from tinylarge.net.profiles import (
    PROFILES_FILE,
    RADIO_PROFILES,
    RadioProfile,
    UnknownRadioProfileError,
    hex_cell_radius_m,
    radio_profile,
    slot_duration_s,
    snr_at_mcl_db,
)
from tinylarge.tables import TableError, parse_table

NAMES = ("nb_iot", "lte_m", "redcap", "embb_fr1", "fr2_mmwave", "fr3", "sub_thz")


def _valid_fields() -> dict[str, Any]:
    return RADIO_PROFILES["redcap"].model_dump()


def test_builtin_names_match_the_scenario_schema() -> None:
    from tinylarge.config.network_config import RADIO_PROFILE_NAMES

    assert tuple(RADIO_PROFILES) == NAMES
    assert set(RADIO_PROFILE_NAMES) == set(NAMES)
    with pytest.raises(TypeError):
        RADIO_PROFILES["x"] = RADIO_PROFILES["redcap"]  # type: ignore[index]


def test_every_row_of_the_data_file_loads_in_file_order() -> None:
    assert all(isinstance(p, RadioProfile) for p in RADIO_PROFILES.values())
    text = resources.files("tinylarge.net").joinpath(PROFILES_FILE).read_text(encoding="utf-8")
    assert parse_table(text, PROFILES_FILE, RadioProfile) == dict(RADIO_PROFILES)


def test_nb_iot_row_field_by_field() -> None:
    # Written out here, independently of the data file; floats compared exactly (==).
    expected = {
        "carrier_ghz": 0.9,
        "uplink_bandwidth_hz": 180e3,
        "downlink_bandwidth_hz": 180e3,
        "device_tx_power_dbm": 23.0,
        "bs_tx_power_dbm": 43.0,
        "bs_noise_figure_db": 5.0,
        "device_noise_figure_db": 9.0,
        "device_antenna_gain_dbi": 0.0,
        "bs_antenna_gain_dbi": 15.0,
        "max_spectral_efficiency": 1.0,
        "cqi_table": "64qam",
        "slot_s": 1e-3,
        "min_snr_db": snr_at_mcl_db(23.0, 164.0, 180e3, 5.0),
        "max_repetitions": 128,
        "scenario": "uma",
        "bs_height_m": 25.0,
        "cell_radius_m": 1732.0 / np.sqrt(3.0),
    }
    got = RADIO_PROFILES["nb_iot"].model_dump()
    assert got.pop("source").startswith("profile NB-IoT: 0.9 GHz, 180 kHz, 23 dBm")
    assert got == expected
    # by hand: 23 - 164 - (-174 + 10 log10(180 kHz) + 5) = -24.55 dB
    assert expected["min_snr_db"] == pytest.approx(-24.5527, abs=1e-4)


# name: (numerology mu, inter-site distance m, MCL dB or None for the NR outage threshold)
DERIVATIONS = {
    "nb_iot": (0, 1732.0, 164.0),
    "lte_m": (0, 1732.0, 155.7),
    "redcap": (1, 500.0, None),
    "embb_fr1": (1, 500.0, None),
    "fr2_mmwave": (3, 200.0, None),
    "fr3": (2, 500.0, None),
    "sub_thz": (6, 20.0, None),
}


@pytest.mark.parametrize("name", NAMES)
def test_derived_numbers_are_exactly_their_derivation(name: str) -> None:
    p = RADIO_PROFILES[name]
    mu, isd_m, mcl_db = DERIVATIONS[name]
    assert p.slot_s == slot_duration_s(mu)
    assert p.cell_radius_m == hex_cell_radius_m(isd_m)
    if mcl_db is None:  # NR: TR 36.942 SNR_min; the top of the profile's CQI table
        assert p.min_snr_db == SHANNON_SNR_MIN_DB
        assert p.max_spectral_efficiency == CQI_TABLES[p.cqi_table].efficiency[-1]
    else:
        bandwidth = p.uplink_bandwidth_hz
        assert p.min_snr_db == snr_at_mcl_db(23.0, mcl_db, bandwidth, p.bs_noise_figure_db)


def _toml_row(name: str, fields: dict[str, Any]) -> str:
    lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v!r}" for k, v in fields.items()]
    return "\n".join([f"[{name}]", *lines, ""])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slot_s": 0.0}, "slot_s = 0.0: Input should be greater than 0"),
        ({"cqi_table": "1024qam"}, "cqi_table = '1024qam': Input should be '64qam' or '256qam'"),
        ({"max_repetitions": 3}, "(row): Value error, max_repetitions must be a power of two"),
    ],
)
def test_bad_row_names_the_file_the_row_and_the_field(change: dict[str, Any], message: str) -> None:
    text = _toml_row("redcap", _valid_fields()) + _toml_row("mine", {**_valid_fields(), **change})
    with pytest.raises(TableError) as info:
        parse_table(text, PROFILES_FILE, RadioProfile)
    assert str(info.value).startswith(
        f"{PROFILES_FILE}: row [mine] is not a valid RadioProfile: {message}"
    )


@pytest.mark.parametrize(
    ("name", "carrier_ghz", "bandwidth_hz", "tx_dbm", "slot_s", "max_se", "table"),
    [
        ("nb_iot", 0.9, 180e3, 23.0, 1e-3, 1.0, "64qam"),
        ("lte_m", 0.9, 1.4e6, 23.0, 1e-3, 1.3, "64qam"),
        ("redcap", 3.5, 20e6, 23.0, 0.5e-3, 5.5547, "64qam"),
        ("embb_fr1", 3.5, 100e6, 23.0, 0.5e-3, 7.4063, "256qam"),
        ("fr2_mmwave", 28.0, 400e6, 23.0, 0.125e-3, 5.5547, "64qam"),
        ("fr3", 10.0, 400e6, 23.0, 0.25e-3, 7.4063, "256qam"),
        ("sub_thz", 140.0, 2e9, 15.0, 15.625e-6, 5.5547, "64qam"),
    ],
)
def test_profiles_carry_radio_md_figures(
    name: str, carrier_ghz: float, bandwidth_hz: float, tx_dbm: float, slot_s: float,
    max_se: float, table: str,
) -> None:  # fmt: skip
    p = RADIO_PROFILES[name]
    assert (p.carrier_ghz, p.uplink_bandwidth_hz, p.device_tx_power_dbm) == (
        carrier_ghz, bandwidth_hz, tx_dbm,
    )  # fmt: skip
    assert p.slot_s == pytest.approx(slot_s, rel=1e-12)
    assert (p.max_spectral_efficiency, p.cqi_table) == (max_se, table)
    if carrier_ghz <= 7.125:  # FR1: 5 dB; FR2 and above: 7-10 dB (3GPP evaluation values)
        assert p.bs_noise_figure_db == 5.0
    else:
        assert 7.0 <= p.bs_noise_figure_db <= 10.0


def test_array_gains_and_deployments() -> None:
    fr2 = RADIO_PROFILES["fr2_mmwave"]
    assert 10 <= fr2.device_antenna_gain_dbi <= 15 and 20 <= fr2.bs_antenna_gain_dbi <= 25
    assert RADIO_PROFILES["sub_thz"].scenario == "inh"
    assert RADIO_PROFILES["sub_thz"].cell_radius_m < 100  # sub-THz: short range (<100 m)
    assert RADIO_PROFILES["embb_fr1"].bs_height_m == 25.0
    assert RADIO_PROFILES["embb_fr1"].cell_radius_m == pytest.approx(500 / np.sqrt(3))
    assert [slot_duration_s(mu) for mu in range(4)] == [1e-3, 5e-4, 2.5e-4, 1.25e-4]


@pytest.mark.parametrize(("name", "mcl_db"), [("nb_iot", 164.0), ("lte_m", 155.7)])
def test_iot_outage_threshold_is_the_mcl(name: str, mcl_db: float) -> None:
    p = RADIO_PROFILES[name]
    at_mcl = snr_db(
        p.device_tx_power_dbm,
        mcl_db + p.device_antenna_gain_dbi + p.bs_antenna_gain_dbi,
        tx_gain_dbi=p.device_antenna_gain_dbi,
        rx_gain_dbi=p.bs_antenna_gain_dbi,
        noise_dbm=p.uplink_noise_dbm,
    )
    assert at_mcl == pytest.approx(p.min_snr_db, abs=1e-9)
    assert p.uplink_noise_dbm == pytest.approx(-174 + 10 * np.log10(p.uplink_bandwidth_hz) + 5)


@pytest.mark.parametrize("name", NAMES)
def test_cqi_link_exists_exactly_when_not_in_outage(name: str) -> None:
    p = RADIO_PROFILES[name]
    snr = np.linspace(-45.0, 45.0, 9001)
    se = spectral_efficiency(
        snr,
        method="cqi",
        cqi_table=p.cqi_table,
        max_spectral_efficiency=p.max_spectral_efficiency,
        snr_min_db=p.min_snr_db,
        max_repetitions=p.max_repetitions,
    )
    np.testing.assert_array_equal(se > 0, ~outage(snr, p.min_snr_db))
    assert se.max() <= p.max_spectral_efficiency


def test_profile_is_frozen_and_rejects_unknown_keys() -> None:
    p = RADIO_PROFILES["redcap"]
    with pytest.raises(ValidationError, match="frozen"):
        p.carrier_ghz = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="carrier_hz"):
        RadioProfile.model_validate({**_valid_fields(), "carrier_hz": 3.5e9})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("uplink_bandwidth_hz", -1.0, "greater than 0"),
        ("carrier_ghz", float("nan"), "finite number"),
        ("bs_tx_power_dbm", float("inf"), "finite number"),
        ("slot_s", 0.0, "greater than 0"),
        ("cqi_table", "1024qam", "'64qam' or '256qam'"),
        ("scenario", "rma", "'uma', 'umi' or 'inh'"),
        ("max_repetitions", 3, "power of two"),
        ("max_spectral_efficiency", 0.1, "below CQI 1"),
    ],
)
def test_profile_validation_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        RadioProfile.model_validate({**_valid_fields(), field: value})
    assert field in str(info.value)


def test_lookup_errors_list_known_names_and_custom_profiles_validate() -> None:
    with pytest.raises(UnknownRadioProfileError) as info:
        radio_profile("wifi")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown radio profile 'wifi'; known: " + ", ".join(sorted(NAMES))
    custom = {"my_cell": {**_valid_fields(), "carrier_ghz": 4.9}}
    assert radio_profile("my_cell", custom).carrier_ghz == 4.9
    with pytest.raises(UnknownRadioProfileError, match="my_cell"):
        radio_profile("other", custom)
    assert radio_profile("redcap", {"redcap": RADIO_PROFILES["fr3"]}) is RADIO_PROFILES["fr3"]
    with pytest.raises(ValidationError, match="carrier_ghz"):
        radio_profile("bad", {"bad": {**_valid_fields(), "carrier_ghz": 0}})
    minimal = {k: v for k, v in _valid_fields().items() if k not in ("source", "max_repetitions")}
    made = radio_profile("m", {"m": minimal})
    assert made.max_repetitions == 1 and "user-defined" in made.source


def test_sources_cite_public_material() -> None:
    # Every figure's source names a specification, a paper or an estimate, never a file that
    # users of the package do not have.
    for name, profile in RADIO_PROFILES.items():
        assert profile.source, name
        assert ".md" not in profile.source, (name, profile.source)
