"""Device energy per message: radio (TX, RX, idle, sleep) plus the compute it ran.

Model (``shared/reference/radio.md``, "Device radio energy", "radio.md" below): the power drawn
while transmitting is the radiated power over the power-amplifier efficiency plus the rest of
the TX chain, P_draw = 10^(P_tx,dBm / 10) mW / eta_PA + P_circuit; receiving, idling and
sleeping draw constant powers. Energy is power x time, summed per message; everything is
vectorized over messages (arrays in, float64 arrays out, broadcast together).

Default figures (radio.md gives currents at 3.6-3.8 V; 3.7 V is taken):

- PA efficiency 0.3 (radio.md: ~20-40 %);
- RX ~50 mA (radio.md: 40-60 mA) -> 0.185 W; PSM sleep ~5 uA (radio.md: 3-10 uA) -> 18.5 uW;
- TX-chain circuit power 0.1 W: ESTIMATE, chosen so that at 23 dBm the module draws
  0.2 W / 0.3 + 0.1 W = 0.77 W = 207 mA at 3.7 V, the low end of radio.md's 200-500 mA;
- idle (connected, not sending) ~5 mA -> 18.5 mW: ESTIMATE, not in radio.md.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

FloatArray = NDArray[np.float64]

#: Module supply voltage, V: midpoint of radio.md's 3.6-3.8 V.
SUPPLY_VOLTAGE_V = 3.7
#: PA efficiency (radio.md: ~20-40 %).
PA_EFFICIENCY = 0.3
#: Receive current, A (radio.md: ~40-60 mA).
RX_CURRENT_A = 50e-3
#: Power-saving-mode sleep current, A (radio.md: ~3-10 uA).
PSM_CURRENT_A = 5e-6
#: Connected-idle current, A. ESTIMATE (not in radio.md).
IDLE_CURRENT_A = 5e-3
#: TX-chain power besides the PA, W. ESTIMATE (see the module docstring).
TX_CIRCUIT_POWER_W = 0.1


def _nonneg(name: str, value: ArrayLike, *, allow_inf: bool = False) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any() or (arr < 0).any() or (not allow_inf and np.isinf(arr).any()):
        allowed = "non-negative (inf allowed)" if allow_inf else "non-negative and finite"
        raise ValueError(f"{name} must be {allowed}")
    return arr


def dbm_to_w(power_dbm: ArrayLike) -> FloatArray:
    """Convert dBm to W: 10^(P / 10) / 1000, element-wise, same shape."""
    return np.asarray(np.power(10.0, np.asarray(power_dbm, dtype=np.float64) / 10.0) / 1e3)


def radio_energy_j(
    tx_airtime_s: ArrayLike,
    tx_power_dbm: ArrayLike,
    *,
    pa_efficiency: float,
    circuit_power_w: float,
    rx_time_s: ArrayLike = 0.0,
    rx_power_w: float,
    idle_time_s: ArrayLike = 0.0,
    idle_power_w: float,
    sleep_time_s: ArrayLike = 0.0,
    sleep_power_w: float,
) -> FloatArray:
    """Radio energy of each message, J.

    E = (10^(P_tx / 10) / 1000 / eta_PA + P_circuit) t_tx + P_rx t_rx + P_idle t_idle
    + P_sleep t_sleep.

    Parameters
    ----------
    tx_airtime_s : array_like of float (>= 0), shape (...)
        Time transmitting, s (all HARQ attempts). ``inf`` (no link) gives ``inf`` J.
    tx_power_dbm : array_like of float, broadcastable
        Radiated (conducted) transmit power, dBm.
    pa_efficiency : float
        Power-amplifier efficiency, in (0, 1].
    circuit_power_w : float
        TX-chain power besides the PA, W (>= 0).
    rx_time_s, idle_time_s, sleep_time_s : array_like of float (>= 0, finite), broadcastable
        Time receiving, connected-idle and sleeping, s.
    rx_power_w, idle_power_w, sleep_power_w : float
        Power drawn in those states, W (>= 0).

    Returns
    -------
    ndarray of float64, broadcast shape
        Energy, J.
    """
    if not 0.0 < pa_efficiency <= 1.0:
        raise ValueError(f"pa_efficiency must be in (0, 1], got {pa_efficiency}")
    powers = {
        "circuit_power_w": circuit_power_w,
        "rx_power_w": rx_power_w,
        "idle_power_w": idle_power_w,
        "sleep_power_w": sleep_power_w,
    }
    for name, power in powers.items():
        _nonneg(name, power)
    tx_dbm = np.asarray(tx_power_dbm, dtype=np.float64)
    if not np.isfinite(tx_dbm).all():
        raise ValueError("tx_power_dbm must be finite")
    tx_draw_w = dbm_to_w(tx_dbm) / pa_efficiency + circuit_power_w
    return np.asarray(
        tx_draw_w * _nonneg("tx_airtime_s", tx_airtime_s, allow_inf=True)
        + rx_power_w * _nonneg("rx_time_s", rx_time_s)
        + idle_power_w * _nonneg("idle_time_s", idle_time_s)
        + sleep_power_w * _nonneg("sleep_time_s", sleep_time_s)
    )


class RadioEnergyModel(BaseModel):
    """Power figures of a device's radio module (defaults: radio.md, "Device radio energy").

    Attributes
    ----------
    pa_efficiency : float
        Power-amplifier efficiency, in (0, 1].
    circuit_power_w, rx_power_w, idle_power_w, sleep_power_w : float
        TX-chain power besides the PA, and receive / connected-idle / PSM-sleep power, W.
    source : str
        Where the figures come from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pa_efficiency: float = Field(PA_EFFICIENCY, gt=0, le=1)
    circuit_power_w: float = Field(TX_CIRCUIT_POWER_W, ge=0, allow_inf_nan=False)
    rx_power_w: float = Field(RX_CURRENT_A * SUPPLY_VOLTAGE_V, ge=0, allow_inf_nan=False)
    idle_power_w: float = Field(IDLE_CURRENT_A * SUPPLY_VOLTAGE_V, ge=0, allow_inf_nan=False)
    sleep_power_w: float = Field(PSM_CURRENT_A * SUPPLY_VOLTAGE_V, ge=0, allow_inf_nan=False)
    source: str = Field(
        "radio.md 'Device radio energy': PA 30 %, RX 50 mA, PSM 5 uA at 3.7 V; circuit 0.1 W "
        "and idle 5 mA are ESTIMATES",
        min_length=1,
    )

    def energy_j(
        self,
        tx_airtime_s: ArrayLike,
        tx_power_dbm: ArrayLike,
        *,
        rx_time_s: ArrayLike = 0.0,
        idle_time_s: ArrayLike = 0.0,
        sleep_time_s: ArrayLike = 0.0,
    ) -> FloatArray:
        """`radio_energy_j` with this model's powers; J, broadcast shape of the inputs."""
        return radio_energy_j(
            tx_airtime_s,
            tx_power_dbm,
            pa_efficiency=self.pa_efficiency,
            circuit_power_w=self.circuit_power_w,
            rx_time_s=rx_time_s,
            rx_power_w=self.rx_power_w,
            idle_time_s=idle_time_s,
            idle_power_w=self.idle_power_w,
            sleep_time_s=sleep_time_s,
            sleep_power_w=self.sleep_power_w,
        )


def message_energy_j(
    tx_airtime_s: ArrayLike,
    tx_power_dbm: ArrayLike,
    *,
    model: RadioEnergyModel,
    rx_time_s: ArrayLike = 0.0,
    idle_time_s: ArrayLike = 0.0,
    sleep_time_s: ArrayLike = 0.0,
    compute_energy_j: ArrayLike = 0.0,
) -> FloatArray:
    """Total device energy per message: radio (`RadioEnergyModel.energy_j`) + compute, J.

    Parameters
    ----------
    tx_airtime_s, tx_power_dbm, rx_time_s, idle_time_s, sleep_time_s : array_like
        As in `radio_energy_j`; broadcast together, shape (...).
    model : RadioEnergyModel
    compute_energy_j : array_like of float (>= 0, finite), broadcastable
        On-device compute energy of the message (e.g. inference energy from
        ``tinylarge.tiny`` footprints), J.

    Returns
    -------
    ndarray of float64, broadcast shape
        Energy, J.
    """
    radio = model.energy_j(
        tx_airtime_s,
        tx_power_dbm,
        rx_time_s=rx_time_s,
        idle_time_s=idle_time_s,
        sleep_time_s=sleep_time_s,
    )
    return np.asarray(radio + _nonneg("compute_energy_j", compute_energy_j))
