"""The closed offload -> label -> distil -> push loop: threshold rules, streams, a small loop."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

from tinylarge.config.training_config import TrainingSpec
from tinylarge.data.partition import Partition
from tinylarge.integrate.colearning.closed_loop import (
    THRESHOLD_BYTES,
    ClosedLoop,
    UpdateChannel,
    exclude_samples,
    reaches_accuracy,
)
from tinylarge.integrate.colearning.contract import FederatedData, LinkBudget
from tinylarge.integrate.inference.confidence import threshold_for_accuracy
from tinylarge.models.registry import build_model
from tinylarge.models.training import train
from tinylarge.secure import BadSignature, Identity, Rollback
from tinylarge.secure.bundle import bundle_overhead_bytes
from tinylarge.secure.costs import bundle_check_cycles
from tinylarge.secure.updates import SignedUpdates
from tinylarge.tiny.mcu import MCU_PROFILES
from tinylarge.tiny.model_file import to_bytes


def test_the_loop_flags_a_threshold_that_misses_its_target() -> None:
    conf = np.array([0.1, 0.2, 0.3, 0.4])
    tiny_ok = np.array([False, False, True, True])
    large_ok = np.array([True, True, True, False])
    # offloading the j least confident: j=0 -> 2/4, j=1 -> 3/4, j=2 -> 4/4, j=4 -> 3/4
    assert reaches_accuracy(conf, tiny_ok, large_ok, threshold_for_accuracy(
        conf, tiny_ok, large_ok, 0.75), 0.75)  # fmt: skip
    assert reaches_accuracy(conf, tiny_ok, large_ok, 0.3, 1.0)  # offloads 2: 4/4
    assert not reaches_accuracy(conf, tiny_ok, large_ok, 0.0, 0.75)  # offloads none: 2/4
    assert not reaches_accuracy(conf, tiny_ok, large_ok, np.inf, 1.0)  # offloads all: 3/4


def test_exclude_samples_keeps_devices_and_order() -> None:
    part = Partition(
        indices=np.array([4, 0, 2, 1, 3], dtype=np.int64),
        offsets=np.array([0, 2, 2, 5], dtype=np.int64),
    )
    out = exclude_samples(part, np.array([0, 3], dtype=np.int64))
    assert out.indices.tolist() == [4, 2, 1] and out.offsets.tolist() == [0, 1, 1, 3]


def _models(data: FederatedData) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A strong edge model and a day-0 tiny model trained briefly on the server's 200 frames."""
    large = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 8}, seed=0)
    spec = TrainingSpec(epochs=8, batch_size=32, patience_epochs=0, val_fraction=0.0)
    train(large, data.x_train, data.y_train, spec, seed=0)
    day0 = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)
    spec = TrainingSpec(epochs=2, batch_size=32, patience_epochs=0, val_fraction=0.0)
    train(day0, data.x_train[:200], data.y_train[:200], spec, seed=0)
    return day0, large


def test_a_small_loop_offloads_less_over_time_and_counts_the_pushes() -> None:
    data = easy_data(n_train=1200, n_devices=4, seed=1)
    day0, large = _models(data)
    budget = links(4, unreachable=(3,))
    loop = ClosedLoop(
        day0,
        large,
        data,
        budget,
        server_indices=np.arange(200),
        class_names=("a", "b", "c", "d"),
        distil_spec=TrainingSpec(
            epochs=4, batch_size=32, learning_rate=0.01, patience_epochs=0, val_fraction=0.0
        ),
        forward_macs=1000,
        frames_per_device=60,
        update_every=2,
        target_offload=0.5,
        calibration_samples=64,
        validation_fraction=0.5,
        seed=0,
    )
    records = loop.run(6)
    offload = [r.extra["offload_fraction"] for r in records]
    assert offload[0] == pytest.approx(0.5, abs=0.15)  # the day-0 cascade
    assert offload[-1] < offload[0] - 0.1
    assert records[-1].accuracy >= records[0].accuracy - 0.02
    assert [r.extra["model_version"] for r in records] == [0, 0, 1, 1, 2, 2]
    push = records[1]  # round 2 pushes version 1 to the 3 reachable devices
    update = push.extra["update_bytes_per_device"]
    # the model file (its manifest's numbers vary a little between versions) + the threshold
    assert abs(update - (len(to_bytes(loop.int8)) + THRESHOLD_BYTES)) <= 64
    assert records[0].extra["update_bytes_per_device"] == 0
    offloaded = round(records[1].extra["stream_offload_fraction"] * 3 * 60)
    assert push.bytes_down == 3 * update + offloaded * 8
    assert push.bytes_up == offloaded * 256
    assert records[-1].extra["gathered_frames"] == pytest.approx(
        sum(r.extra["stream_offload_fraction"] * 180 for r in records)
    )


def test_bad_loop_arguments_are_named() -> None:
    data = easy_data()
    model = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 2}, seed=0)
    spec = TrainingSpec(epochs=1)
    with pytest.raises(ValueError, match="server_indices must hold >= 10"):
        ClosedLoop(
            model,
            model,
            data,
            links(),
            server_indices=[1, 2],
            class_names=("a",) * 4,
            distil_spec=spec,
            forward_macs=10,
        )
    with pytest.raises(ValueError, match="update_every must be an integer >= 1"):
        ClosedLoop(
            model,
            model,
            data,
            links(),
            server_indices=np.arange(20),
            class_names=("a",) * 4,
            distil_spec=spec,
            forward_macs=10,
            update_every=0,
        )


def _small_loop(budget: LinkBudget, channel: UpdateChannel | None) -> ClosedLoop:
    data = easy_data(n_train=600, n_devices=4, seed=2)
    day0, large = _models(data)
    return ClosedLoop(
        day0, large, data, budget, server_indices=np.arange(200), class_names=("a", "b", "c", "d"),
        distil_spec=TrainingSpec(epochs=1, batch_size=32, patience_epochs=0, val_fraction=0.0),
        forward_macs=1000, frames_per_device=10, update_every=1, calibration_samples=32,
        update_channel=channel, seed=0,
    )  # fmt: skip


def test_signed_pushes_carry_the_bundle_and_devices_pay_its_check() -> None:
    target, mcu = "stm32l4r5", MCU_PROFILES["stm32l4r5"]
    channel = SignedUpdates(Identity.generate("edge"), target, mcu)
    loop = _small_loop(links(4), channel)
    record = loop.round(1)
    update = to_bytes(loop.int8) + struct.pack("<f", loop.threshold)
    bundle = channel.package(update, 1)
    assert record.extra["update_bytes_per_device"] == len(bundle)
    assert len(bundle) - len(update) == bundle_overhead_bytes(bundle)
    # what a device would install is exactly the update, and version 1 cannot be replayed
    assert channel.install(bundle, 0) == update
    with pytest.raises(Rollback):
        channel.install(bundle, 1)
    plain = _small_loop(links(4), None)
    base = plain.round(1)
    assert base.extra["update_bytes_per_device"] == len(update)
    radio = 0.2 * 1e-3 * (np.ceil(8 * len(bundle) / 1e4) - np.ceil(8 * len(update) / 1e4))
    check = channel.install_energy_j(len(update))
    assert check == pytest.approx(bundle_check_cycles(len(update)) / 120e6 * mcu.active_power_w)
    # the same round: only the push differs (4 devices download a bigger package and check it)
    assert record.device_energy_j - base.device_energy_j == pytest.approx(4 * (radio + check))


def test_a_push_that_fails_its_check_stops_the_loop() -> None:
    mcu = MCU_PROFILES["stm32l4r5"]
    signer = SignedUpdates(Identity.generate("edge"), "stm32l4r5", mcu)
    impostor = SignedUpdates(Identity.generate("edge"), "stm32l4r5", mcu)

    class Forged:
        def package(self, update: bytes, version: int) -> bytes:
            return impostor.package(update, version)  # signed by a key devices do not trust

        def install(self, package: bytes, installed_version: int) -> bytes:
            return signer.install(package, installed_version)

        def install_energy_j(self, update_bytes: int) -> float:
            return 0.0

    with pytest.raises(BadSignature):
        _small_loop(links(4), Forged()).round(1)
