"""3GPP TR 38.901 (v17) large-scale fading, vectorized: path loss, LOS probability, shadowing.

Scenarios (``SCENARIOS``): ``"uma"`` (Urban Macro), ``"umi"`` (Urban Micro - Street Canyon)
and ``"inh"`` (Indoor Hotspot - Office, mixed office for the LOS probability). Formulas
follow TR 38.901 Table 7.4.1-1 (path loss, shadow fading), Table 7.4.2-1 (LOS probability)
and Section 7.4.3 / Table 7.4.3-2 (low-loss outdoor-to-indoor penetration) of 3GPP TR 38.901
V17.0.0 (2022-03), "Study on channel model for frequencies from 0.5 to 100 GHz".

Every function takes arrays (or scalars) and broadcasts them with NumPy rules; the result
has the broadcast shape. Deterministic functions (`path_loss_db`, `los_probability`) are
kept apart from the sampler (`sample_path_loss_db`), which draws the LOS state, shadow
fading and penetration loss from an explicit ``numpy.random.Generator``.

Documented simplifications:

- The effective environment height is fixed, ``h_E = 1 m`` (TR 38.901 Table 7.4.1-1 note 1
  draws ``h_E`` for UMa UTs taller than 13 m; 1 m is the value for all shorter UTs).
- For ``"inh"`` the distance argument is the 3-D distance ``d_3D``; heights are not used.
- For indoor (O2I) devices the outdoor path loss and LOS probability use the device's full
  distance rather than only its outdoor part ``d_2D-out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Scenario names accepted by every function of this module.
SCENARIOS: Final[tuple[str, ...]] = ("uma", "umi", "inh")
#: Speed of light used by TR 38.901 Table 7.4.1-1 note 1 (breakpoint distance), m/s.
SPEED_OF_LIGHT_M_PER_S: Final = 3.0e8
#: Effective environment height h_E, fixed (simplification, see module docstring), m.
EFFECTIVE_ENV_HEIGHT_M: Final = 1.0
#: Carrier frequencies the model is specified for: TR 38.901 title and Section 7.4.1, GHz.
FC_RANGE_GHZ: Final = (0.5, 100.0)
#: Standard BS antenna heights: TR 38.901 Table 7.4.1-1 (UMa 25 m, UMi 10 m) and
#: Table 7.2-2 (InH office: 3 m, ceiling mounted), m. Not used as defaults; for callers.
DEFAULT_BS_HEIGHT_M: Final = MappingProxyType({"uma": 25.0, "umi": 10.0, "inh": 3.0})
#: Standard deviation of the O2I penetration loss, low-loss model, TR 38.901 Table 7.4.3-2, dB.
O2I_SIGMA_P_DB: Final = 4.4


@dataclass(frozen=True)
class _Limits:
    """Validity ranges and shadow-fading deviations of one scenario (Table 7.4.1-1)."""

    distance_name: str
    distance_range_m: tuple[float, float]
    h_ut_range_m: tuple[float, float] | None  # None: heights are not used
    sigma_sf_los_db: float
    sigma_sf_nlos_db: float


_LIMITS: Final = {
    "uma": _Limits("d_2d_m", (10.0, 5000.0), (1.5, 22.5), 4.0, 6.0),
    "umi": _Limits("d_2d_m", (10.0, 5000.0), (1.5, 22.5), 4.0, 7.82),
    "inh": _Limits("d_3d_m (passed as d_2d_m)", (1.0, 150.0), None, 3.0, 8.03),
}


def _limits(scenario: str) -> _Limits:
    if not isinstance(scenario, str) or scenario not in _LIMITS:
        raise ValueError(f"unknown scenario {scenario!r}; allowed: {', '.join(SCENARIOS)}")
    return _LIMITS[scenario]


def _float(name: str, value: npt.ArrayLike) -> FloatArray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number or array of them: {err}") from None


def _bool(name: str, value: npt.ArrayLike) -> BoolArray:
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array (True/False), got dtype {arr.dtype}")
    return arr


def _check_range(
    name: str, values: FloatArray, lo: float, hi: float, unit: str, where: str, hint: str = ""
) -> None:
    """Raise a ValueError naming ``name``, the values' min/max and ``[lo, hi]`` if outside."""
    if values.size == 0:
        return
    vmin, vmax = float(np.min(values)), float(np.max(values))
    if np.isnan(vmin) or np.isnan(vmax):
        raise ValueError(f"{name} contains NaN; allowed range is [{lo:g}, {hi:g}] {unit}")
    if vmin < lo or vmax > hi:
        raise ValueError(
            f"{name} must be within [{lo:g}, {hi:g}] {unit} ({where}), "
            f"got values from {vmin:g} to {vmax:g}{hint}"
        )


def _check_fc(fc_ghz: FloatArray) -> None:
    _check_range("fc_ghz", fc_ghz, *FC_RANGE_GHZ, "GHz", "TR 38.901 Section 7.4.1")


def _shape(**arrays: npt.NDArray[np.generic]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        raise ValueError(f"input shapes do not broadcast together: {shapes}") from None


def _prepare_geometry(
    lim: _Limits, d_m: FloatArray, h_ut_m: FloatArray, clamp: bool
) -> tuple[FloatArray, FloatArray]:
    """Validate (or, with ``clamp``, clip) the distance and UT height of one scenario."""
    d_lo, d_hi = lim.distance_range_m
    if clamp:
        d_m = np.clip(d_m, d_lo, d_hi)
        if lim.h_ut_range_m is not None:
            h_ut_m = np.clip(h_ut_m, *lim.h_ut_range_m)
    hint = "; pass clamp=True to clip into the range"
    _check_range(lim.distance_name, d_m, d_lo, d_hi, "m", "TR 38.901 Table 7.4.1-1", hint)
    if lim.h_ut_range_m is not None:
        _check_range("h_ut_m", h_ut_m, *lim.h_ut_range_m, "m", "TR 38.901 Table 7.4.1-1", hint)
    return d_m, h_ut_m


def _check_h_bs(scenario: str, h_bs_m: FloatArray) -> None:
    if scenario != "inh":
        where = "above h_E = 1 m for the breakpoint distance; standard: 25 m UMa, 10 m UMi"
        _check_range("h_bs_m", h_bs_m, EFFECTIVE_ENV_HEIGHT_M + 1e-9, np.inf, "m", where)


def _full(values: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Return ``values`` as a writable float64 array of the broadcast ``shape``."""
    if values.shape == shape:
        return np.asarray(values, dtype=np.float64)
    return np.broadcast_to(values, shape).astype(np.float64)


def _los_and_nlos_db(
    scenario: str, d: FloatArray, fc: FloatArray, h_bs: FloatArray, h_ut: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """PL_LOS and the NLOS model PL' (before the max), TR 38.901 Table 7.4.1-1, in dB.

    UMa/UMi work on ``l2 = log10(d_3D^2) = 2 log10(d_3D)`` (no square root), so their
    coefficients are half those of the table. The LOS two-slope model is written as
    ``PL1 + k max(0, l2 - log10(d'_BP^2 + (h_BS - h_UT)^2))``: for ``d_2D > d'_BP`` this
    equals ``PL2`` (k = 9 for UMa, 9.5 for UMi), and it is continuous at the breakpoint.
    Terms that depend only on frequency and heights are computed at their own (usually
    scalar) shape; one ``log10`` runs over the device array.
    """
    log_fc = np.log10(fc)
    if scenario == "inh":  # d is d_3D
        log_d3d = np.log10(d)
        pl_los = 17.3 * log_d3d + (32.4 + 20.0 * log_fc)
        return pl_los, 38.3 * log_d3d + (17.30 + 24.9 * log_fc)
    dh2 = (h_bs - h_ut) ** 2
    l2 = np.log10(d * d + dh2)
    # Note 1 of Table 7.4.1-1: breakpoint distance d'_BP = 4 h'_BS h'_UT f_c / c, in m.
    d_bp = 4.0 * (h_bs - EFFECTIVE_ENV_HEIGHT_M) * (h_ut - EFFECTIVE_ENV_HEIGHT_M) * fc * 1e9
    d_bp /= SPEED_OF_LIGHT_M_PER_S
    log_bp2 = np.log10(d_bp * d_bp + dh2)
    if scenario == "uma":
        pl_los = 11.0 * l2 + (28.0 + 20.0 * log_fc)
        pl_los += 9.0 * np.maximum(l2 - log_bp2, 0.0)
        nlos = 19.54 * l2 + (13.54 + 20.0 * log_fc - 0.6 * (h_ut - 1.5))
    else:
        pl_los = 10.5 * l2 + (32.4 + 20.0 * log_fc)
        pl_los += 9.5 * np.maximum(l2 - log_bp2, 0.0)
        nlos = 17.65 * l2 + (22.4 + 21.3 * log_fc - 0.3 * (h_ut - 1.5))
    return pl_los, nlos


def _combine(pl_los: FloatArray, pl_nlos: FloatArray, los: BoolArray) -> FloatArray:
    """NLOS path loss is ``max(PL_LOS, PL')`` (Table 7.4.1-1); pick per device by ``los``."""
    if los.size and bool(np.all(los)):
        return pl_los
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def path_loss_db(
    scenario: str,
    d_2d_m: npt.ArrayLike,
    fc_ghz: npt.ArrayLike,
    *,
    h_bs_m: npt.ArrayLike,
    h_ut_m: npt.ArrayLike,
    los: npt.ArrayLike,
    clamp: bool = False,
) -> FloatArray:
    """Basic path loss of TR 38.901 Table 7.4.1-1, without shadow fading.

    LOS: the two-slope model split at the breakpoint distance ``d'_BP = 4 h'_BS h'_UT f_c / c``
    (``h' = h - h_E``, ``h_E = 1 m``). NLOS: ``max(PL_LOS, PL'_NLOS)``.

    Parameters
    ----------
    scenario : {"uma", "umi", "inh"}
        Urban Macro, Urban Micro - Street Canyon, Indoor Hotspot - Office.
    d_2d_m : array_like of float, any shape
        Horizontal BS-device distance in m; for ``"inh"`` the 3-D distance. Valid:
        10-5000 m (UMa, UMi), 1-150 m (InH).
    fc_ghz : array_like of float
        Carrier frequency in GHz, 0.5-100 (never clamped).
    h_bs_m : array_like of float
        BS antenna height in m, > 1 m (standard: 25 m UMa, 10 m UMi); unused for ``"inh"``.
    h_ut_m : array_like of float
        Device antenna height in m, 1.5-22.5 (UMa, UMi); unused for ``"inh"``.
    los : array_like of bool
        Line-of-sight state per device.
    clamp : bool, default False
        False: out-of-range distances or heights raise ``ValueError``. True: clip them into
        the valid range (the frequency is still checked).

    Returns
    -------
    numpy.ndarray of float64, broadcast shape of all inputs
        Path loss in dB.

    Raises
    ------
    ValueError
        Unknown scenario, an input outside its validity range, or shapes that do not
        broadcast; the message names the parameter, its min/max and the allowed range.
    """
    lim = _limits(scenario)
    d, fc = _float("d_2d_m", d_2d_m), _float("fc_ghz", fc_ghz)
    h_bs, h_ut = _float("h_bs_m", h_bs_m), _float("h_ut_m", h_ut_m)
    los_arr = _bool("los", los)
    shape = _shape(d_2d_m=d, fc_ghz=fc, h_bs_m=h_bs, h_ut_m=h_ut, los=los_arr)
    _check_fc(fc)
    _check_h_bs(scenario, h_bs)
    d, h_ut = _prepare_geometry(lim, d, h_ut, clamp)
    pl_los, pl_nlos = _los_and_nlos_db(scenario, d, fc, h_bs, h_ut)
    return _full(_combine(pl_los, pl_nlos, los_arr), shape)


def _los_probability(scenario: str, d: FloatArray, h_ut: FloatArray) -> FloatArray:
    """TR 38.901 Table 7.4.2-1 on validated inputs, clipped to [0, 1]."""
    if scenario == "inh":  # mixed office: one exp with the piecewise exponent
        exponent = np.where(d < 6.5, -(d - 1.2) / 4.7, np.log(0.32) - (d - 6.5) / 32.6)
        return np.minimum(np.exp(exponent), 1.0)
    ratio = 18.0 / d
    p = np.exp(d * (-1.0 / (63.0 if scenario == "uma" else 36.0)))
    p *= 1.0 - ratio
    p += ratio
    if scenario == "uma":
        c_prime = (np.maximum(h_ut - 13.0, 0.0) / 10.0) ** 1.5  # C'(h_UT), 0 up to 13 m
        if np.any(c_prime > 0.0):
            x = d / 100.0
            p = p * (1.0 + c_prime * 1.25 * x * x * x * np.exp(d * (-1.0 / 150.0)))
    # d <= 18 m gives p >= 1 (-> exactly 1); tall UMa UTs can exceed 1 just beyond 18 m.
    return np.minimum(p, 1.0)


def los_probability(
    scenario: str, d_2d_m: npt.ArrayLike, *, h_ut_m: npt.ArrayLike, clamp: bool = False
) -> FloatArray:
    """Probability of line of sight, TR 38.901 Table 7.4.2-1.

    UMa: ``1`` for ``d <= 18 m``, else ``[18/d + exp(-d/63)(1 - 18/d)]
    [1 + C'(h_UT) 5/4 (d/100)^3 exp(-d/150)]`` with ``C' = ((h_UT - 13)/10)^1.5`` above 13 m.
    UMi: ``18/d + exp(-d/36)(1 - 18/d)``. InH mixed office: 1 up to 1.2 m,
    ``exp(-(d - 1.2)/4.7)`` below 6.5 m, ``0.32 exp(-(d - 6.5)/32.6)`` beyond. The result is
    clipped to [0, 1] (the UMa expression slightly exceeds 1 just past 18 m for tall UTs).

    Parameters
    ----------
    scenario : {"uma", "umi", "inh"}
    d_2d_m : array_like of float
        Horizontal distance in m (UMa, UMi: 10-5000 m; InH: 1-150 m).
    h_ut_m : array_like of float
        Device height in m, 1.5-22.5 for UMa/UMi (only UMa uses it); unused for InH.
    clamp : bool, default False
        Clip out-of-range distances and heights instead of raising ``ValueError``.

    Returns
    -------
    numpy.ndarray of float64, broadcast shape of ``d_2d_m`` and ``h_ut_m``
        P_LOS in [0, 1].
    """
    lim = _limits(scenario)
    d, h_ut = _float("d_2d_m", d_2d_m), _float("h_ut_m", h_ut_m)
    shape = _shape(d_2d_m=d, h_ut_m=h_ut)
    d, h_ut = _prepare_geometry(lim, d, h_ut, clamp)
    return _full(_los_probability(scenario, d, h_ut), shape)


def shadow_fading_std_db(scenario: str, los: npt.ArrayLike) -> FloatArray:
    """Shadow-fading standard deviation sigma_SF of TR 38.901 Table 7.4.1-1, in dB.

    UMa 4 (LOS) / 6 (NLOS), UMi 4 / 7.82, InH 3 / 8.03.

    Returns
    -------
    numpy.ndarray of float64, shape of ``los``
    """
    lim = _limits(scenario)
    return np.where(_bool("los", los), lim.sigma_sf_los_db, lim.sigma_sf_nlos_db).astype(np.float64)


def o2i_penetration_loss_db(fc_ghz: npt.ArrayLike, d_2d_in_m: npt.ArrayLike) -> FloatArray:
    """Mean outdoor-to-indoor loss, low-loss model of TR 38.901 Section 7.4.3 (Table 7.4.3-2).

    ``PL_tw + PL_in`` with ``PL_tw = 5 - 10 log10(0.3·10^(-L_glass/10) + 0.7·10^(-L_concrete/10))``,
    ``L_glass = 2 + 0.2 f_c``, ``L_concrete = 5 + 4 f_c`` (Table 7.4.3-1) and
    ``PL_in = 0.5 d_2D-in``. The random part (std ``O2I_SIGMA_P_DB`` = 4.4 dB) is not included.

    Parameters
    ----------
    fc_ghz : array_like of float
        Carrier frequency in GHz, 0.5-100.
    d_2d_in_m : array_like of float
        Indoor distance in m, >= 0 (the standard draws it within 0-25 m).

    Returns
    -------
    numpy.ndarray of float64, broadcast shape of the inputs
        Penetration loss in dB.
    """
    fc, d_in = _float("fc_ghz", fc_ghz), _float("d_2d_in_m", d_2d_in_m)
    _shape(fc_ghz=fc, d_2d_in_m=d_in)
    _check_fc(fc)
    _check_range("d_2d_in_m", d_in, 0.0, np.inf, "m", "indoor distance")
    l_glass, l_concrete = 2.0 + 0.2 * fc, 5.0 + 4.0 * fc
    transmission = 0.3 * 10.0 ** (-l_glass / 10.0) + 0.7 * 10.0 ** (-l_concrete / 10.0)
    pl_tw = 5.0 - 10.0 * np.log10(transmission)
    return np.asarray(pl_tw + 0.5 * d_in, dtype=np.float64)


def sample_path_loss_db(
    rng: np.random.Generator,
    scenario: str,
    d_2d_m: npt.ArrayLike,
    fc_ghz: npt.ArrayLike,
    *,
    h_bs_m: npt.ArrayLike,
    h_ut_m: npt.ArrayLike,
    indoor: npt.ArrayLike,
    indoor_distance_max_m: float = 25.0,
    clamp: bool = False,
) -> tuple[FloatArray, BoolArray]:
    """Draw each device's LOS state and path loss including shadowing and O2I penetration.

    Per device: ``los ~ Bernoulli(P_LOS)`` (`los_probability`); path loss = `path_loss_db`
    + ``N(0, sigma_SF^2)`` (`shadow_fading_std_db`, log-normal shadowing); indoor devices add
    `o2i_penetration_loss_db` + ``N(0, 4.4^2)`` dB with ``d_2D-in`` the minimum of two
    uniform draws on ``[0, indoor_distance_max_m]`` (TR 38.901 Section 7.4.3.1).

    Distances below the scenario minimum (10 m UMa/UMi, 1 m InH: devices dropped right next
    to the site) are always raised to that minimum. Other out-of-range inputs raise
    ``ValueError`` unless ``clamp=True``, as in `path_loss_db`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all random draws.
    scenario, d_2d_m, fc_ghz, h_bs_m, h_ut_m, clamp
        As in `path_loss_db`.
    indoor : array_like of bool
        True for devices inside buildings (UMa/UMi only; ``"inh"`` devices are all indoor
        already, so any True raises ``ValueError``).
    indoor_distance_max_m : float, default 25.0
        Upper end of the indoor distance draw in m (25 m for UMa and UMi, Section 7.4.3.1).

    Returns
    -------
    pl_db : numpy.ndarray of float64, broadcast shape of the inputs
        Path loss in dB.
    los : numpy.ndarray of bool, same shape
        Drawn line-of-sight state.
    """
    lim = _limits(scenario)
    d, fc = _float("d_2d_m", d_2d_m), _float("fc_ghz", fc_ghz)
    h_bs, h_ut = _float("h_bs_m", h_bs_m), _float("h_ut_m", h_ut_m)
    indoor_arr = _bool("indoor", indoor)
    shape = _shape(d_2d_m=d, fc_ghz=fc, h_bs_m=h_bs, h_ut_m=h_ut, indoor=indoor_arr)
    if not (np.isfinite(indoor_distance_max_m) and indoor_distance_max_m >= 0.0):
        raise ValueError(f"indoor_distance_max_m must be >= 0 m, got {indoor_distance_max_m}")
    if scenario == "inh" and bool(np.any(indoor_arr)):
        raise ValueError("indoor=True (O2I penetration) applies to 'uma' and 'umi' only")
    _check_fc(fc)
    _check_h_bs(scenario, h_bs)
    d = np.maximum(d, lim.distance_range_m[0])  # NaN propagates and is caught below
    d, h_ut = _prepare_geometry(lim, d, h_ut, clamp)

    los = rng.random(shape) < _los_probability(scenario, d, h_ut)
    pl_los, pl_nlos = _los_and_nlos_db(scenario, d, fc, h_bs, h_ut)
    shadow = rng.standard_normal(shape)
    shadow *= lim.sigma_sf_nlos_db + (lim.sigma_sf_los_db - lim.sigma_sf_nlos_db) * los
    pl = np.asarray(_combine(pl_los, pl_nlos, los) + shadow)

    mask = np.broadcast_to(indoor_arr, shape)
    n_indoor = int(np.count_nonzero(mask))
    if n_indoor:
        d_in = indoor_distance_max_m * np.minimum(rng.random(n_indoor), rng.random(n_indoor))
        fc_in = fc.reshape(()) if fc.size == 1 else np.broadcast_to(fc, shape)[mask]
        penetration = o2i_penetration_loss_db(fc_in, d_in)
        pl[mask] += penetration + O2I_SIGMA_P_DB * rng.standard_normal(n_indoor)
    return np.asarray(pl, dtype=np.float64), los
