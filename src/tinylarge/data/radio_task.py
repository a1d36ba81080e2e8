"""`make_radio_task`: the radio modulation-classification `Task` from a scenario seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tinylarge.data.channel_impairments import Fading
from tinylarge.data.radio import generate_radio_frames_from_params
from tinylarge.data.radio_params import RADIO_CLASSES, RadioParams, check_classes
from tinylarge.data.task import Task
from tinylarge.seeding import rng_for


def make_radio_task(
    seed: int,
    *,
    n_train: int = 40_000,
    n_test: int = 10_000,
    classes: Sequence[str] = RADIO_CLASSES,
    frame_length: int = 128,
    samples_per_symbol: int = 8,
    rolloff: float = 0.35,
    snr_db_min: float = -10.0,
    snr_db_max: float = 20.0,
    snr_db_step: float = 2.0,
    timing_offset_max_symbols: float = 1.0,
    carrier_phase_max_rad: float = 2.0 * math.pi,
    cfo_max_cycles_per_sample: float = 0.001,
    phase_noise_std_rad: float = 0.005,
    fading: Fading = "rician",
    multipath_taps: int = 3,
    tap_decay_db: float = 6.0,
    rician_k_db: float = 3.0,
    normalize_power: bool = True,
) -> Task:
    """Build the radio modulation-classification `Task` from a seed.

    Train and test frames come from the independent named streams
    ``rng_for(seed, "task", "radio", "train")`` and ``(..., "test")``. Per-sample metadata:
    ``"snr_db"`` (float32, dB). See `generate_radio_frames` for every other parameter.

    Parameters
    ----------
    seed : int
        Scenario seed (>= 0).
    n_train, n_test : int
        Number of training / test frames (>= 1 each).

    Returns
    -------
    Task
        ``x`` float32 of shape (n, 2, frame_length), labels int64, class names ``classes``.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    params = RadioParams(
        classes=check_classes(classes),
        frame_length=frame_length, samples_per_symbol=samples_per_symbol, rolloff=rolloff,
        snr_db_min=snr_db_min, snr_db_max=snr_db_max, snr_db_step=snr_db_step,
        timing_offset_max_symbols=timing_offset_max_symbols,
        carrier_phase_max_rad=carrier_phase_max_rad,
        cfo_max_cycles_per_sample=cfo_max_cycles_per_sample,
        phase_noise_std_rad=phase_noise_std_rad, fading=fading, multipath_taps=multipath_taps,
        tap_decay_db=tap_decay_db, rician_k_db=rician_k_db, normalize_power=normalize_power,
    )  # fmt: skip
    x_train, y_train, snr_train = generate_radio_frames_from_params(
        n_train, rng_for(seed, "task", "radio", "train"), params
    )
    x_test, y_test, snr_test = generate_radio_frames_from_params(
        n_test, rng_for(seed, "task", "radio", "test"), params
    )
    description = (
        f"Modulation classification: {len(params.classes)} classes, {params.frame_length} I/Q "
        f"samples per frame at {params.samples_per_symbol} samples/symbol, SNR "
        f"{params.snr_db_min:g}..{params.snr_db_max:g} dB step {params.snr_db_step:g}, "
        f"fading {params.fading!r}."
    )
    return Task(
        name="radio", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=params.classes, meta_train={"snr_db": snr_train},
        meta_test={"snr_db": snr_test}, description=description,
    )  # fmt: skip
