"""Each device's link at its mean SNR: the seconds and joules to send or receive n bytes.

What a device (or a planner on its behalf) can know before it sends: the whole band at the
device's mean uplink / downlink SNR (no fast fading, no other device in the slot, no HARQ),
airtime in whole slots (`tinylarge.net.link.airtime_s`), and the radio's power while
transmitting and receiving (`tinylarge.net.energy.RadioEnergyModel`: TX power / PA efficiency
+ circuit power, RX power). One model for every place that costs bytes this way: the offload
estimate of resource-aware policies and the session set-ups (`tinylarge.sim.engine`), the
co-learning traffic (`tinylarge.integrate.colearning.contract.LinkBudget`, which extends it)
and each device's split point (`tinylarge.integrate.inference.split_computing.choose_split`).
Vectorized over devices: arrays in, float64 arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.cell import CellDevices
from tinylarge.net.link import airtime_s
from tinylarge.net.uplink import LinkSettings, efficiency_fn

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def mean_link_rates_bps(
    cells: CellDevices, settings: LinkSettings
) -> tuple[FloatArray, FloatArray]:
    """Each device's uplink and downlink rate at its mean SNR over the whole band, bit/s.

    What a device can know before sending (no fast fading, no other devices); 0 out of range.

    Returns
    -------
    uplink_bps, downlink_bps : ndarray of float64, shape (n_devices,)
    """
    profile = cells.profile
    se_fn = efficiency_fn(profile, settings.spectral_efficiency)
    up = profile.uplink_bandwidth_hz * se_fn(cells.uplink_mean_snr_db)
    down = profile.downlink_bandwidth_hz * se_fn(cells.downlink_mean_snr_db)
    return np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)


def _airtime(
    rates_bps: FloatArray, slot_s: float, n_bytes: npt.ArrayLike, device: npt.ArrayLike | None
) -> FloatArray:
    rate = np.asarray(rates_bps)
    index = None if device is None else np.asarray(device, dtype=np.int64)
    return airtime_s(8 * np.asarray(n_bytes), rate if index is None else rate[index], slot_s)


def _energy_j(power_w: float, seconds: FloatArray) -> FloatArray:
    """``power_w x seconds``; ``inf`` where the time is (no link), even at 0 W."""
    with np.errstate(invalid="ignore"):
        return np.asarray(np.where(np.isinf(seconds), np.inf, power_w * seconds))


@dataclass(frozen=True, eq=False)
class MeanRateLink:
    """Each device's link to the server at its mean SNR, and its radio's power.

    Attributes
    ----------
    uplink_bps, downlink_bps : ndarray of float64, shape (n_devices,)
        Whole-band rate at the device's mean SNR (0: out of range), bit/s.
    slot_s : float
        Scheduling slot (> 0), s; airtime is charged in whole slots.
    tx_draw_w, rx_power_w : float
        Power the device draws while transmitting (`tinylarge.net.energy.tx_draw_w`) and
        receiving, W (>= 0).
    """

    uplink_bps: FloatArray
    downlink_bps: FloatArray
    slot_s: float
    tx_draw_w: float
    rx_power_w: float

    def __post_init__(self) -> None:
        up, down = np.asarray(self.uplink_bps), np.asarray(self.downlink_bps)
        if up.ndim != 1 or up.shape != down.shape:
            raise ValueError("uplink_bps and downlink_bps must be 1-D arrays of equal length")
        if (up < 0).any() or (down < 0).any() or not (np.isfinite(up).all()):
            raise ValueError("link rates must be finite and >= 0")
        for name in ("slot_s", "tx_draw_w", "rx_power_w"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0) or (name == "slot_s" and value == 0):
                raise ValueError(f"{name} must be finite and >= 0 (slot_s > 0), got {value}")

    @classmethod
    def of_cells(cls, cells: CellDevices, settings: LinkSettings) -> MeanRateLink:
        """The devices of ``cells``: their mean rates (`mean_link_rates_bps`), the profile's
        slot and TX power through ``settings.energy``."""
        up, down = mean_link_rates_bps(cells, settings)
        energy = settings.energy
        return cls(
            uplink_bps=up,
            downlink_bps=down,
            slot_s=float(cells.profile.slot_s),
            tx_draw_w=float(energy.tx_draw_w(cells.profile.device_tx_power_dbm)),
            rx_power_w=float(energy.rx_power_w),
        )

    @property
    def n_devices(self) -> int:
        return int(np.asarray(self.uplink_bps).size)

    @property
    def reachable(self) -> npt.NDArray[np.bool_]:
        """Devices that can both send and receive (rates > 0), shape (n_devices,)."""
        return (np.asarray(self.uplink_bps) > 0) & (np.asarray(self.downlink_bps) > 0)

    def send(
        self, n_bytes: npt.ArrayLike, device: npt.ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Airtime (s) and radio energy (J) of ``device`` sending ``n_bytes`` at its mean rate.

        Parameters
        ----------
        n_bytes : array_like of float or int (>= 0)
            Bytes on air, broadcast against ``device``.
        device : array_like of int, optional
            Index of each sender (any shape, e.g. ``(n, 1)`` against sizes of shape
            ``(1, K)``); default: every device in order, shape (n_devices,).

        Returns
        -------
        seconds, joules : ndarray of float64, broadcast shape
            Airtime in whole slots (0 for 0 bytes, ``inf`` for bytes over a rate of 0) and
            TX draw x airtime (``inf`` without a link).
        """
        seconds = _airtime(self.uplink_bps, self.slot_s, n_bytes, device)
        return seconds, _energy_j(self.tx_draw_w, seconds)

    def receive(
        self, n_bytes: npt.ArrayLike, device: npt.ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Airtime (s) and radio energy (J) of ``device`` receiving ``n_bytes`` at its mean
        downlink rate: as `send`, with the RX power."""
        seconds = _airtime(self.downlink_bps, self.slot_s, n_bytes, device)
        return seconds, _energy_j(self.rx_power_w, seconds)
