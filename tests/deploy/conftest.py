"""A real Mosquitto per test module (see the ``mosquitto`` fixture), a small int8 tiny model, a
fixed "large" model, identities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tinylarge.deploy.broker import Broker
from tinylarge.deploy.server import ServerConfig
from tinylarge.models.registry import build_model
from tinylarge.secure.identity import Identity, Registry
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.quantize import quantize_model

SHAPE = (2, 128)
CLASSES = tuple(f"c{i}" for i in range(8))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, mosquitto: str) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("broker"), executable=mosquitto) as running:
        yield running


@dataclass(frozen=True)
class World:
    """What a deployment test needs besides the broker."""

    tiny: TinyModel
    tiny_float: torch.nn.Module  # what ``tiny`` was quantized from
    frames: np.ndarray  # int8 (n, 2, 128)
    weights: np.ndarray  # the "large" model: logits = flatten(x) @ weights
    edge: Identity
    devices: list[Identity]
    registry: Registry

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) @ self.weights).astype(np.float32)

    def config(self, **changes: object) -> ServerConfig:
        spec = self.tiny.input_spec
        base: dict[str, object] = {
            "frame_shape": SHAPE,
            "input_scale": spec.scale,
            "input_zero_point": spec.zero_point,
            "num_classes": len(CLASSES),
            **changes,
        }
        return ServerConfig(**base)  # type: ignore[arg-type]

    def edge_answers(self, sample: np.ndarray) -> np.ndarray:
        """What the edge must answer for each sample (its dequantized int8 frame)."""
        spec = self.tiny.input_spec
        x = (self.frames[sample].astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        return self.predict(x).argmax(1)


@pytest.fixture(scope="module")
def world() -> World:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, *SHAPE)).astype(np.float32)
    model = build_model("tiny_cnn", SHAPE, len(CLASSES), {"width": 4}, seed=0)
    model.eval()
    with torch.no_grad():
        tiny = quantize_model(model, x[:100], CLASSES)
    edge = Identity.generate("edge")
    devices = [Identity.generate(f"device-{i:05d}") for i in range(12)]
    registry = Registry()
    for d in devices:
        registry.enroll(d.device_id, d.public_key)
    weights = rng.normal(size=(int(np.prod(SHAPE)), len(CLASSES))).astype(np.float32)
    return World(tiny, model, tiny.quantize_input(x), weights, edge, devices, registry)
