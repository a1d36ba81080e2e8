"""Device energy per message: radio (TX, RX, idle, sleep) plus the compute it ran.

Model: the power drawn while transmitting is the radiated power over the power-amplifier
efficiency plus the rest of the TX chain, P_draw = 10^(P_tx,dBm / 10) mW / eta_PA + P_circuit
(`tx_draw_w`); receiving, idling and sleeping draw constant powers, as in the state-based
energy model of cellular IoT devices (3GPP TR 45.820, section 5.4 "Energy consumption
evaluation methodology"; A. Soerensen et al., "Modelling and Experimental Validation for
Battery Lifetime Estimation in NB-IoT and LTE-M", IEEE Internet of Things Journal 2022,
arXiv:2106.13286). Energy is power x time, summed per message; everything is vectorized over
messages (arrays in, float64 arrays out, broadcast together).

Default figures: typical currents of LTE-M / NB-IoT modules at a 3.6-3.8 V supply (module
data sheets, e.g. Quectel BG96 Hardware Design, "Current Consumption": TX at 23 dBm ~200-500
mA, RX ~40-60 mA, PSM sleep ~3-10 uA; handset power amplifiers at full power are ~20-40 %
efficient); 3.7 V is taken:

- PA efficiency 0.3 (~20-40 %);
- RX ~50 mA (40-60 mA) -> 0.185 W; PSM sleep ~5 uA (3-10 uA) -> 18.5 uW;
- TX-chain circuit power 0.1 W: ESTIMATE, chosen so that at 23 dBm the module draws
  0.2 W / 0.3 + 0.1 W = 0.77 W = 207 mA at 3.7 V, the low end of the 200-500 mA above;
- idle (connected, not sending) ~5 mA -> 18.5 mW: ESTIMATE, not from a data sheet.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

FloatArray = NDArray[np.float64]

#: Module supply voltage, V: midpoint of the modules' 3.6-3.8 V (module doc).
SUPPLY_VOLTAGE_V = 3.7
#: PA efficiency (typical ~20-40 %, module doc).
PA_EFFICIENCY = 0.3
#: Receive current, A (typical ~40-60 mA, module doc).
RX_CURRENT_A = 50e-3
#: Power-saving-mode sleep current, A (typical ~3-10 uA, module doc).
PSM_CURRENT_A = 5e-6
#: Connected-idle current, A. ESTIMATE (not from a data sheet).
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


def tx_draw_w(
    tx_power_dbm: ArrayLike, *, pa_efficiency: float, circuit_power_w: float
) -> FloatArray:
    """Power the device draws while transmitting, W: 10^(P_tx / 10) / 1000 / eta_PA + P_circuit.

    Parameters
    ----------
    tx_power_dbm : array_like of float, shape (...)
        Radiated (conducted) transmit power, dBm; finite.
    pa_efficiency : float
        Power-amplifier efficiency, in (0, 1].
    circuit_power_w : float
        TX-chain power besides the PA, W (>= 0).

    Returns
    -------
    ndarray of float64, shape of ``tx_power_dbm``
    """
    if not 0.0 < pa_efficiency <= 1.0:
        raise ValueError(f"pa_efficiency must be in (0, 1], got {pa_efficiency}")
    _nonneg("circuit_power_w", circuit_power_w)
    tx_dbm = np.asarray(tx_power_dbm, dtype=np.float64)
    if not np.isfinite(tx_dbm).all():
        raise ValueError("tx_power_dbm must be finite")
    return np.asarray(dbm_to_w(tx_dbm) / pa_efficiency + circuit_power_w)


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
    powers = {
        "rx_power_w": rx_power_w,
        "idle_power_w": idle_power_w,
        "sleep_power_w": sleep_power_w,
    }
    for name, power in powers.items():
        _nonneg(name, power)
    tx_w = tx_draw_w(tx_power_dbm, pa_efficiency=pa_efficiency, circuit_power_w=circuit_power_w)
    return np.asarray(
        tx_w * _nonneg("tx_airtime_s", tx_airtime_s, allow_inf=True)
        + rx_power_w * _nonneg("rx_time_s", rx_time_s)
        + idle_power_w * _nonneg("idle_time_s", idle_time_s)
        + sleep_power_w * _nonneg("sleep_time_s", sleep_time_s)
    )


class RadioEnergyModel(BaseModel):
    """Power figures of a device's radio module (defaults: the module doc's typical figures).

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
        "typical LTE-M / NB-IoT module figures (e.g. Quectel BG96 data sheet): PA 30 %, RX "
        "50 mA, PSM 5 uA at 3.7 V; circuit 0.1 W and idle 5 mA are ESTIMATES",
        min_length=1,
    )

    def tx_draw_w(self, tx_power_dbm: ArrayLike) -> FloatArray:
        """`tx_draw_w` with this model's PA efficiency and circuit power; W, shape of the input."""
        return tx_draw_w(
            tx_power_dbm, pa_efficiency=self.pa_efficiency, circuit_power_w=self.circuit_power_w
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
