"""Coverage of a radio profile across its cell: SNR, rate and outage of devices dropped in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinylarge.net.cell import CellDevices, attach_devices
from tinylarge.net.fading import FadingKind, fading_gain_db, fading_power_gain
from tinylarge.net.link import outage
from tinylarge.net.profiles import RadioProfile
from tinylarge.net.uplink import efficiency_fn


@dataclass(frozen=True)
class Coverage:
    """Uplink coverage of one profile: per-device arrays and their summary.

    ``snr_db`` is the uplink SNR over the full band with one fast-fading draw per device;
    ``rate_bps`` the rate a device gets with the whole uplink band (single user);
    ``shared_rate_bps`` the rate with the band shared equally among ``devices_per_cell``
    devices transmitting at once (each concentrating its power on its share).
    """

    name: str
    cells: CellDevices
    snr_db: np.ndarray
    rate_bps: np.ndarray
    shared_rate_bps: np.ndarray
    outage: np.ndarray
    devices_per_cell: int

    def summary(self) -> dict[str, Any]:
        p = self.cells.profile
        return {
            "carrier_ghz": p.carrier_ghz,
            "uplink_bandwidth_hz": p.uplink_bandwidth_hz,
            "scenario": p.scenario,
            "cell_radius_m": p.cell_radius_m,
            "snr_db_median": float(np.median(self.snr_db)),
            "snr_db_p5": float(np.percentile(self.snr_db, 5)),
            "rate_bps_median": float(np.median(self.rate_bps)),
            "rate_bps_p5": float(np.percentile(self.rate_bps, 5)),
            "shared_rate_bps_median": float(np.median(self.shared_rate_bps)),
            "shared_rate_bps_p5": float(np.percentile(self.shared_rate_bps, 5)),
            "devices_per_cell": self.devices_per_cell,
            "outage_fraction": float(self.outage.mean()),
        }


def coverage(
    rng: np.random.Generator,
    name: str,
    profile: RadioProfile,
    n_devices: int,
    *,
    devices_per_cell: int = 100,
    indoor_fraction: float = 0.0,
    device_height_m: float = 1.5,
    fading: FadingKind = "rayleigh",
    rician_k_db: float = 3.0,
    method: str = "cqi",
) -> Coverage:
    """Drop ``n_devices`` in one cell of ``profile`` and compute their uplink SNR and rates."""
    if devices_per_cell < 1:
        raise ValueError(f"devices_per_cell must be >= 1, got {devices_per_cell}")
    cells = attach_devices(
        rng,
        profile,
        n_devices,
        indoor_fraction=indoor_fraction,
        device_height_m=device_height_m,
    )
    fast = fading_gain_db(fading_power_gain(rng, n_devices, kind=fading, k_factor_db=rician_k_db))
    snr = cells.uplink_mean_snr_db + fast

    se_fn = efficiency_fn(profile, "cqi" if method == "cqi" else "shannon")

    def rate(snr_db: np.ndarray, share: float) -> np.ndarray:
        return np.asarray(share * profile.uplink_bandwidth_hz * se_fn(snr_db), dtype=np.float64)

    share = 1.0 / devices_per_cell
    return Coverage(
        name=name,
        cells=cells,
        snr_db=snr,
        rate_bps=rate(snr, 1.0),
        shared_rate_bps=rate(snr - 10.0 * np.log10(share), share),
        outage=outage(snr, profile.min_snr_db),
        devices_per_cell=devices_per_cell,
    )
