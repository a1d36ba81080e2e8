"""Unlabelled frames from a wider radio world than any task: what the foundation model
pretrains on.

Each group of frames draws its own generator settings (`RadioParams`) from `PretrainingWorld`:
every modulation the generator knows (the task's eight and `EXTRA_MODULATIONS`), SNR from
-20 to 30 dB, 4/8/16 samples per symbol, any roll-off, Rician, Rayleigh or no fading with 1-6
taps, carrier frequency offsets ten times the task's and phase noise up to six times. The
frames are deterministic in ``rng``: the same seed gives the same frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import numpy.typing as npt

from tinylarge.data.channel_impairments import FADING_MODELS, Fading
from tinylarge.data.modulation import ALL_MODULATIONS
from tinylarge.data.radio import generate_radio_frames_from_params
from tinylarge.data.radio_params import RadioParams, check_classes


@dataclass(frozen=True)
class PretrainingWorld:
    """The ranges the pretraining frames are drawn from (each group draws its settings).

    Attributes
    ----------
    classes : tuple of str
        Modulations drawn (default: all of `ALL_MODULATIONS`).
    frame_length : int
        Complex samples per frame (must equal the model's input).
    snr_db_min, snr_db_max, snr_db_step : float
        SNR grid, dB.
    samples_per_symbol : tuple of int
        Oversampling factors drawn.
    rolloff_min, rolloff_max : float
        Root-raised-cosine roll-off range.
    cfo_max_cycles_per_sample : float
        Largest carrier frequency offset, cycles/sample (a group draws its bound uniformly).
    phase_noise_max_std_rad : float
        Largest Wiener phase-noise increment std, rad.
    fading : tuple of str
        Fading models drawn.
    multipath_taps_max : int
        Taps drawn from 1..this.
    tap_decay_db_min, tap_decay_db_max, rician_k_db_min, rician_k_db_max : float
        Power-delay-profile decay and Rician K-factor ranges, dB.
    group_frames : int
        Frames sharing one draw of the settings.
    """

    classes: tuple[str, ...] = ALL_MODULATIONS
    frame_length: int = 128
    snr_db_min: float = -20.0
    snr_db_max: float = 30.0
    snr_db_step: float = 1.0
    samples_per_symbol: tuple[int, ...] = (4, 8, 16)
    rolloff_min: float = 0.2
    rolloff_max: float = 0.5
    cfo_max_cycles_per_sample: float = 0.01
    phase_noise_max_std_rad: float = 0.03
    fading: tuple[Fading, ...] = ("rician", "rayleigh", "none")
    multipath_taps_max: int = 6
    tap_decay_db_min: float = 3.0
    tap_decay_db_max: float = 10.0
    rician_k_db_min: float = -3.0
    rician_k_db_max: float = 10.0
    group_frames: int = 32
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", check_classes(self.classes))
        if self.group_frames < 1:
            raise ValueError(f"group_frames must be >= 1, got {self.group_frames}")
        if not self.samples_per_symbol or min(self.samples_per_symbol) < 2:
            raise ValueError(
                f"samples_per_symbol must be a non-empty list of values >= 2, "
                f"got {self.samples_per_symbol}"
            )
        unknown = [f for f in self.fading if f not in FADING_MODELS]
        if not self.fading or unknown:
            raise ValueError(f"fading must be a non-empty subset of {FADING_MODELS}")
        self.draw(np.random.default_rng(0))  # validates the ranges through RadioParams

    def to_dict(self) -> dict[str, object]:
        """JSON-ready settings (recorded in a checkpoint's config)."""
        document = asdict(self)
        document.pop("extra")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in document.items()}

    def draw(self, rng: np.random.Generator) -> RadioParams:
        """One group's generator settings."""
        return RadioParams(
            classes=self.classes,
            frame_length=self.frame_length,
            samples_per_symbol=int(rng.choice(self.samples_per_symbol)),
            rolloff=float(rng.uniform(self.rolloff_min, self.rolloff_max)),
            snr_db_min=self.snr_db_min,
            snr_db_max=self.snr_db_max,
            snr_db_step=self.snr_db_step,
            cfo_max_cycles_per_sample=float(rng.uniform(0.0, self.cfo_max_cycles_per_sample)),
            phase_noise_std_rad=float(rng.uniform(0.0, self.phase_noise_max_std_rad)),
            fading=self.fading[int(rng.integers(len(self.fading)))],
            multipath_taps=int(rng.integers(1, self.multipath_taps_max + 1)),
            tap_decay_db=float(rng.uniform(self.tap_decay_db_min, self.tap_decay_db_max)),
            rician_k_db=float(rng.uniform(self.rician_k_db_min, self.rician_k_db_max)),
        )


@dataclass(frozen=True)
class WorldFrames:
    """Frames of the pretraining world with what generated them (for analysis, not training).

    Attributes
    ----------
    x : float32, shape (n, 2, frame_length)
        I and Q, unit mean power per frame.
    modulation : int64, shape (n,)
        Index into the world's ``classes``.
    snr_db : float32, shape (n,)
    samples_per_symbol : int64, shape (n,)
    """

    x: npt.NDArray[np.float32]
    modulation: npt.NDArray[np.int64]
    snr_db: npt.NDArray[np.float32]
    samples_per_symbol: npt.NDArray[np.int64]


def generate_world_frames(
    n_frames: int, rng: np.random.Generator, world: PretrainingWorld | None = None
) -> WorldFrames:
    """``n_frames`` frames of ``world`` (default `PretrainingWorld()`), deterministic in ``rng``.

    Frames come in groups of ``world.group_frames`` that share one draw of the settings; the
    frames are shuffled so a batch mixes groups.
    """
    world = world or PretrainingWorld()
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    settings_rng, frames_rng, shuffle_rng = rng.spawn(3)
    xs, labels, snrs, spss = [], [], [], []
    for start in range(0, int(n_frames), world.group_frames):
        n = min(world.group_frames, int(n_frames) - start)
        params = world.draw(settings_rng)
        # A group of fewer frames than classes: rotate which classes get the extra frames.
        order = settings_rng.permutation(len(world.classes))
        params = replace(params, classes=tuple(world.classes[i] for i in order))
        x, y, snr = generate_radio_frames_from_params(n, frames_rng, params)
        xs.append(x)
        labels.append(order[y])
        snrs.append(snr)
        spss.append(np.full(n, params.samples_per_symbol, dtype=np.int64))
    if not xs:
        empty = np.zeros((0, 2, world.frame_length), dtype=np.float32)
        return WorldFrames(empty, np.zeros(0, np.int64), np.zeros(0, np.float32),
                           np.zeros(0, np.int64))  # fmt: skip
    order = shuffle_rng.permutation(int(n_frames))
    return WorldFrames(
        x=np.concatenate(xs)[order],
        modulation=np.concatenate(labels)[order],
        snr_db=np.concatenate(snrs)[order],
        samples_per_symbol=np.concatenate(spss)[order],
    )
