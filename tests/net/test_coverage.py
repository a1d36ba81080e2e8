"""Coverage of a profile across its cell."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.net import coverage, radio_profile


def test_coverage_summary_is_consistent_with_its_arrays() -> None:
    profile = radio_profile("embb_fr1")
    cov = coverage(np.random.default_rng(0), "embb_fr1", profile, 5000, devices_per_cell=50)
    s = cov.summary()
    assert s["snr_db_median"] == pytest.approx(np.median(cov.snr_db))
    assert s["snr_db_p5"] < s["snr_db_median"]
    assert s["outage_fraction"] == pytest.approx(np.mean(cov.snr_db < profile.min_snr_db))
    # Whole-band single-user rate is capped by max SE x bandwidth, and outage means rate 0.
    assert cov.rate_bps.max() <= profile.max_spectral_efficiency * profile.uplink_bandwidth_hz
    assert np.all(cov.rate_bps[cov.outage] == 0)
    # A 1/50 share caps the rate at 1/50 of the band's peak; but a device concentrating its
    # power on its share gains 17 dB of SNR, so some devices in outage on the whole band
    # still get through on a share (uplink power limitation).
    cap = profile.max_spectral_efficiency * profile.uplink_bandwidth_hz / 50
    assert cov.shared_rate_bps.max() <= cap + 1e-6
    assert np.any(cov.shared_rate_bps[cov.outage] > 0)
    # Devices near the base station see a higher SNR than those at the edge (path loss).
    d = cov.cells.topology.d_2d_m
    assert np.median(cov.snr_db[d < 100]) > np.median(cov.snr_db[d > 250]) + 10


def test_devices_per_cell_must_be_positive() -> None:
    with pytest.raises(ValueError, match="devices_per_cell must be >= 1"):
        coverage(np.random.default_rng(0), "x", radio_profile("redcap"), 10, devices_per_cell=0)
