"""The pretraining world: wider than the task, deterministic, and the extra modulations."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.data.modulation import CONSTELLATIONS, EXTRA_MODULATIONS, MODULATIONS, modulate
from tinylarge.data.pretraining_world import PretrainingWorld, generate_world_frames
from tinylarge.data.radio_params import RADIO_CLASSES


def test_the_task_keeps_its_eight_classes_and_the_world_adds_others() -> None:
    assert RADIO_CLASSES == MODULATIONS
    assert len(MODULATIONS) == 8
    assert not set(EXTRA_MODULATIONS) & set(MODULATIONS)
    assert set(PretrainingWorld().classes) == set(MODULATIONS) | set(EXTRA_MODULATIONS)


@pytest.mark.parametrize(("name", "points"), [("32QAM", 32), ("256QAM", 256), ("16PSK", 16),
                                              ("PAM8", 8), ("OOK", 2)])  # fmt: skip
def test_extra_constellations_have_their_size_and_unit_energy(name: str, points: int) -> None:
    alphabet = CONSTELLATIONS[name]
    assert len(np.unique(np.round(alphabet, 9))) == points
    assert np.mean(np.abs(alphabet) ** 2) == pytest.approx(1.0)


def test_cross_32qam_is_the_6x6_square_without_its_corners() -> None:
    scaled = CONSTELLATIONS["32QAM"] * np.sqrt(20.0)  # mean energy of the integer grid is 20
    levels = {-5, -3, -1, 1, 3, 5}
    assert {round(p.real) for p in scaled} == levels
    assert not any(abs(p.real) > 4 and abs(p.imag) > 4 for p in scaled)


def test_gmsk_has_a_constant_envelope() -> None:
    rng = np.random.default_rng(0)
    signal = modulate("GMSK", np.zeros(4), 64, 8, 0.35, rng)
    np.testing.assert_allclose(np.abs(signal), 1.0, atol=1e-12)


def test_world_frames_cover_the_ranges_and_are_reproducible() -> None:
    world = PretrainingWorld()
    frames = generate_world_frames(3000, np.random.default_rng(1), world)
    again = generate_world_frames(3000, np.random.default_rng(1), world)
    np.testing.assert_array_equal(frames.x, again.x)
    assert frames.x.shape == (3000, 2, 128) and frames.x.dtype == np.float32
    assert frames.snr_db.min() < -15 and frames.snr_db.max() > 25  # task: -10..20 dB
    assert set(np.unique(frames.samples_per_symbol)) == {4, 8, 16}
    counts = np.bincount(frames.modulation, minlength=len(world.classes))
    assert counts.min() > 0.7 * counts.mean()  # every class, roughly balanced
    np.testing.assert_allclose(np.mean(frames.x**2, axis=(1, 2)) * 2, 1.0, rtol=1e-4)


def test_bad_worlds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown radio class"):
        PretrainingWorld(classes=("BPSK", "FM"))
    with pytest.raises(ValueError, match="samples_per_symbol"):
        PretrainingWorld(samples_per_symbol=(1,))
