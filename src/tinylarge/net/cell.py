"""Devices attached to cells: their large-scale channel to the serving base station.

`attach_devices` drops devices in the profile's TR 38.901 scenario, samples LOS, path loss
with shadow fading and outdoor-to-indoor loss once per device (large-scale fading is constant
over a run), and returns the mean uplink and downlink SNR over the full bandwidth. Small-scale
fading is drawn per transmission by `tinylarge.net.uplink`.

Above 100 GHz (sub-THz) TR 38.901 does not apply; the path loss is taken at 100 GHz plus the
free-space frequency term 20 log10(fc / 100 GHz), a documented extrapolation (the 38.901
formulas themselves scale as 20 log10(fc) in their LOS branches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.link import snr_db
from tinylarge.net.pathloss import FC_RANGE_GHZ, sample_path_loss_db
from tinylarge.net.profiles import RadioProfile
from tinylarge.net.topology import Topology, drop_devices

FloatArray = npt.NDArray[np.float64]
#: Minimum device distance per scenario (TR 38.901 Table 7.4.1-1 validity), m.
MIN_DISTANCE_M = {"uma": 10.0, "umi": 10.0, "inh": 1.0}


@dataclass(frozen=True)
class CellDevices:
    """Devices of a run and their large-scale channel (arrays of shape (n_devices,)).

    Attributes
    ----------
    profile : RadioProfile
    topology : Topology
    path_loss_db : path loss incl. shadow fading and O2I penetration, dB
    los : line of sight to the serving base station
    uplink_mean_snr_db, downlink_mean_snr_db : SNR over the full band without fast fading, dB
    """

    profile: RadioProfile
    topology: Topology
    path_loss_db: FloatArray
    los: npt.NDArray[np.bool_]
    uplink_mean_snr_db: FloatArray
    downlink_mean_snr_db: FloatArray

    @property
    def n_devices(self) -> int:
        return self.topology.n_devices

    def take(self, index: npt.ArrayLike) -> CellDevices:
        """The devices at ``index`` (integer positions), in that order, with their channels."""
        i = np.asarray(index, dtype=np.int64)
        return CellDevices(
            profile=self.profile, topology=self.topology.take(i),
            path_loss_db=self.path_loss_db[i], los=self.los[i],
            uplink_mean_snr_db=self.uplink_mean_snr_db[i],
            downlink_mean_snr_db=self.downlink_mean_snr_db[i],
        )  # fmt: skip


def attach_devices(
    rng: np.random.Generator,
    profile: RadioProfile,
    n_devices: int,
    *,
    n_cells: int = 1,
    indoor_fraction: float = 0.0,
    device_height_m: float = 1.5,
) -> CellDevices:
    """Drop ``n_devices`` in ``n_cells`` cells of ``profile`` and sample their channels.

    In the ``inh`` scenario every device is indoors already, so ``indoor_fraction`` (extra
    outdoor-to-indoor loss) does not apply there.
    """
    scenario = profile.scenario
    indoor = 0.0 if scenario == "inh" else indoor_fraction
    topology = drop_devices(
        rng,
        n_devices,
        cell_radius_m=profile.cell_radius_m,
        min_distance_m=MIN_DISTANCE_M[scenario],
        n_cells=n_cells,
        h_ut_m=device_height_m,
        indoor_fraction=indoor,
    )
    fc_ghz = min(profile.carrier_ghz, FC_RANGE_GHZ[1])
    distance = topology.d_2d_m
    if scenario == "inh":  # TR 38.901 InH takes the 3-D distance
        distance = np.hypot(distance, profile.bs_height_m - topology.h_ut_m)
    path_loss, los = sample_path_loss_db(
        rng,
        scenario,
        distance,
        fc_ghz,
        h_bs_m=profile.bs_height_m,
        h_ut_m=topology.h_ut_m,
        indoor=topology.indoor,
        clamp=True,
    )
    if profile.carrier_ghz > FC_RANGE_GHZ[1]:
        path_loss = path_loss + 20.0 * np.log10(profile.carrier_ghz / FC_RANGE_GHZ[1])
    uplink = snr_db(
        profile.device_tx_power_dbm,
        path_loss,
        tx_gain_dbi=profile.device_antenna_gain_dbi,
        rx_gain_dbi=profile.bs_antenna_gain_dbi,
        noise_dbm=profile.uplink_noise_dbm,
    )
    downlink = snr_db(
        profile.bs_tx_power_dbm,
        path_loss,
        tx_gain_dbi=profile.bs_antenna_gain_dbi,
        rx_gain_dbi=profile.device_antenna_gain_dbi,
        noise_dbm=profile.downlink_noise_dbm,
    )
    return CellDevices(profile, topology, path_loss, los, uplink, downlink)
