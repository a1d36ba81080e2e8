"""The `radio` task: automatic modulation classification frames (RadioML-like), vectorized.

Signal chain of one frame (each stage per frame, each switchable off)::

    symbols -> pulse shaping at a random timing offset (modulation.py)
            -> multipath block fading -> carrier phase, frequency offset, phase noise
            -> AWGN at the frame's SNR -> AGC (unit mean power)

Random numbers come from independent child streams of the caller's generator, one per
stage (plan: labels and SNRs; symbols; timing; fading; carrier; noise), so switching an
impairment off or on leaves the labels, the SNRs and the other impairments' draws unchanged
(the data symbols too, except that the number of multipath taps sets how many are drawn).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.data import channel_impairments as ch
from tinylarge.data.channel_impairments import Fading
from tinylarge.data.modulation import modulate
from tinylarge.data.radio_params import RadioParams, check_classes

ComplexArray = npt.NDArray[np.complex128]

#: Frames simulated per vectorized chunk. Rationale: keeps the complex128 working set at a
#: few MB per array (2048 frames x ~130 samples x 16 B) so it stays cache-friendly and memory
#: is bounded for any n_frames. Random draws are made chunk by chunk, so the generated
#: numbers depend on this value: changing it changes every data set (note it if you do).
CHUNK_FRAMES = 2048

_STREAMS = ("plan", "symbols", "timing", "fading", "carrier", "noise")
#: The default settings (`generate_radio_frames` takes its keyword defaults from here).
_DEFAULTS = RadioParams()


@dataclass(frozen=True)
class RadioComponents:
    """Noise-free received frames and their noise, kept apart (before AGC).

    Attributes
    ----------
    clean : numpy.ndarray of complex128, shape (n_frames, frame_length)
        Received signal after every channel impairment except noise.
    noise : numpy.ndarray of complex128, shape (n_frames, frame_length)
        The additive white Gaussian noise of each frame.
    labels : numpy.ndarray of int64, shape (n_frames,)
        Class index into ``params.classes``.
    snr_db : numpy.ndarray of float32, shape (n_frames,)
        Requested SNR of each frame in dB (received signal power over noise power).
    """

    clean: ComplexArray
    noise: ComplexArray
    labels: npt.NDArray[np.int64]
    snr_db: npt.NDArray[np.float32]


def _plan(
    n_frames: int, params: RadioParams, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Balanced, shuffled labels and per-frame SNRs drawn from the grid."""
    n_classes = len(params.classes)
    counts = np.full(n_classes, n_frames // n_classes, dtype=np.int64)
    counts[: n_frames % n_classes] += 1
    labels = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int64), counts))
    levels = params.snr_levels_db()
    snr_db = levels[rng.integers(0, levels.size, size=n_frames)].astype(np.float32)
    return labels.astype(np.int64), snr_db


def _iter_chunks(
    labels: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.float32],
    params: RadioParams,
    streams: dict[str, np.random.Generator],
) -> Iterator[tuple[int, int, ComplexArray, ComplexArray]]:
    """Yield ``(start, stop, clean, noise)`` for consecutive chunks of frames."""
    length, sps, n_taps = params.frame_length, params.samples_per_symbol, params.channel_taps
    for start in range(0, labels.size, CHUNK_FRAMES):
        stop = min(start + CHUNK_FRAMES, labels.size)
        chunk_labels = labels[start:stop]
        n = stop - start
        delays = ch.sample_timing_offsets(
            n, sps, params.timing_offset_max_symbols, streams["timing"]
        )
        # n_taps - 1 extra leading samples feed the multipath delay line (no transient).
        transmitted = np.empty((n, length + n_taps - 1), dtype=np.complex128)
        for label, name in enumerate(params.classes):
            rows = np.flatnonzero(chunk_labels == label)
            if rows.size:
                transmitted[rows] = modulate(
                    name,
                    delays[rows],
                    transmitted.shape[1],
                    sps,
                    params.rolloff,
                    streams["symbols"],
                )
        gains = ch.sample_multipath_gains(
            n, n_taps, params.tap_decay_db, params.rician_k_db, params.fading, streams["fading"]
        )
        received = ch.apply_multipath(transmitted, gains)
        phase = ch.sample_carrier_phase(
            n,
            length,
            streams["carrier"],
            phase_max_rad=params.carrier_phase_max_rad,
            cfo_max_cycles_per_sample=params.cfo_max_cycles_per_sample,
            phase_noise_std_rad=params.phase_noise_std_rad,
        )
        received = ch.apply_carrier_phase(received, phase)
        noise = ch.sample_awgn(received, snr_db[start:stop], streams["noise"])
        yield start, stop, received, noise


def _prepare(
    n_frames: int, rng: np.random.Generator, params: RadioParams
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], dict[str, np.random.Generator]]:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    streams = dict(zip(_STREAMS, rng.spawn(len(_STREAMS)), strict=True))
    labels, snr_db = _plan(int(n_frames), params, streams["plan"])
    return labels, snr_db, streams


def simulate_radio_components(
    n_frames: int, rng: np.random.Generator, params: RadioParams
) -> RadioComponents:
    """Simulate frames and return the clean received signal and the noise separately.

    Consumes ``rng`` exactly as `generate_radio_frames` does, so for the same generator state
    ``clean + noise`` (then AGC if ``params.normalize_power``) equals its output up to float32
    rounding. Meant for tests and analysis: it holds two complex128 arrays of
    ``n_frames * frame_length`` samples (32 bytes per sample) in memory.

    Parameters
    ----------
    n_frames : int
        Number of frames (>= 0).
    rng : numpy.random.Generator
        Source of randomness; child streams are spawned from it.
    params : RadioParams
        Generator settings.

    Returns
    -------
    RadioComponents
    """
    labels, snr_db, streams = _prepare(n_frames, rng, params)
    clean = np.empty((labels.size, params.frame_length), dtype=np.complex128)
    noise = np.empty_like(clean)
    for start, stop, clean_chunk, noise_chunk in _iter_chunks(labels, snr_db, params, streams):
        clean[start:stop] = clean_chunk
        noise[start:stop] = noise_chunk
    return RadioComponents(clean=clean, noise=noise, labels=labels, snr_db=snr_db)


def generate_radio_frames(
    n_frames: int,
    rng: np.random.Generator,
    *,
    classes: Sequence[str] = _DEFAULTS.classes,
    frame_length: int = _DEFAULTS.frame_length,
    samples_per_symbol: int = _DEFAULTS.samples_per_symbol,
    rolloff: float = _DEFAULTS.rolloff,
    snr_db_min: float = _DEFAULTS.snr_db_min,
    snr_db_max: float = _DEFAULTS.snr_db_max,
    snr_db_step: float = _DEFAULTS.snr_db_step,
    timing_offset_max_symbols: float = _DEFAULTS.timing_offset_max_symbols,
    carrier_phase_max_rad: float = _DEFAULTS.carrier_phase_max_rad,
    cfo_max_cycles_per_sample: float = _DEFAULTS.cfo_max_cycles_per_sample,
    phase_noise_std_rad: float = _DEFAULTS.phase_noise_std_rad,
    fading: Fading = _DEFAULTS.fading,
    multipath_taps: int = _DEFAULTS.multipath_taps,
    tap_decay_db: float = _DEFAULTS.tap_decay_db,
    rician_k_db: float = _DEFAULTS.rician_k_db,
    normalize_power: bool = _DEFAULTS.normalize_power,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Generate labelled modulation-classification frames (I/Q), deterministically from ``rng``.

    Parameters
    ----------
    n_frames : int
        Number of frames (>= 0). Each class gets ``n_frames // C`` frames, the first
        ``n_frames % C`` classes one more; the order is shuffled.
    rng : numpy.random.Generator
        Source of randomness. Independent child streams are spawned from it (this advances
        its spawn counter, not its state).
    classes, frame_length, ..., normalize_power
        The generator's settings: each keyword is the field of `RadioParams` of the same name,
        with the same default, meaning, unit and allowed range (see its docstring). The
        defaults give 16 SNR levels from -10 to 20 dB over the 8 classes of `RADIO_CLASSES`.

    Returns
    -------
    x : numpy.ndarray of float32, shape (n_frames, 2, frame_length)
        Channel 0 is I (real part), channel 1 is Q (imaginary part); dimensionless
        (unit mean power per frame with AGC on).
    y : numpy.ndarray of int64, shape (n_frames,)
        Class labels in ``[0, len(classes))``.
    snr_db : numpy.ndarray of float32, shape (n_frames,)
        Each frame's SNR in dB.

    Raises
    ------
    ValueError
        If a setting is out of its range (the message names the field, the value and the
        allowed range), ``n_frames`` is not a non-negative integer or ``rng`` not a Generator.
    """
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
    return generate_radio_frames_from_params(n_frames, rng, params)


def generate_radio_frames_from_params(
    n_frames: int, rng: np.random.Generator, params: RadioParams
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """`generate_radio_frames` with its settings given as one validated `RadioParams`."""
    labels, snr_db, streams = _prepare(n_frames, rng, params)
    x = np.empty((labels.size, 2, params.frame_length), dtype=np.float32)
    for start, stop, clean, noise in _iter_chunks(labels, snr_db, params, streams):
        noisy = clean + noise
        if params.normalize_power:
            noisy = ch.normalize_frame_power(noisy)
        x[start:stop, 0] = noisy.real
        x[start:stop, 1] = noisy.imag
    return x, labels, snr_db
