"""Every kind of message the simulator exchanges passes through a session unchanged, and its
size on air is exactly what the network costing charges for it (payload + overhead)."""

from __future__ import annotations

import struct

import numpy as np
import torch

from tinylarge.deploy.hlm_protocol import ReplyEnvelope, TokenEnvelope
from tinylarge.integrate.colearning.split_training_step import smashed_bytes
from tinylarge.integrate.colearning.update_compression import Int8Compression, state_bytes
from tinylarge.integrate.hybrid_lm import wire as lm_wire
from tinylarge.integrate.hybrid_lm.wire import ENVELOPE_BYTES
from tinylarge.integrate.inference.frame_codec import requantize_frames
from tinylarge.integrate.inference.split_computing import QUANT_HEADER_BYTES
from tinylarge.models.registry import build_model
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.secure import Identity, MessageType, Registry, handshake, sign_bundle
from tinylarge.secure.costs import protocol_overhead
from tinylarge.tiny.mcu import MCU_PROFILES
from tinylarge.tiny.model_file import to_bytes
from tinylarge.tiny.quantize import quantize_model


def _payloads() -> dict[MessageType, tuple[bytes, int]]:
    """(real payload, the bytes the simulator accounts for it) of each message type."""
    rng = np.random.default_rng(0)
    model = build_model("tiny_cnn", (2, 32), 4, {"width": 2}, seed=0)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    x = rng.normal(size=(16, 2, 32)).astype(np.float32)
    tiny = quantize_model(model, x, ("a", "b", "c", "d"))
    frame = tiny.quantize_input(x[:1])
    # 4-bit split activations of 64 values: scale + zero point, then two codes per byte
    codes = requantize_frames(rng.integers(-128, 128, 64), 4)
    activation = struct.pack("<ff", 0.05, 0.0) + (codes[0::2] << 4 | codes[1::2]).tobytes()
    # an int8-compressed federated update: per tensor its int8 codes and a float32 scale
    delta = {k: (v.float() * 0.01).unsqueeze(0) for k, v in state.items() if v.is_floating_point()}
    _, sizes = Int8Compression().compress(delta)
    update = b"".join(
        (v / (v.abs().max() / 127)).round().to(torch.int8).numpy().tobytes()
        + struct.pack("<f", float(v.abs().max() / 127))
        for v in delta.values()
    )
    global_model = b"".join(v.float().numpy().tobytes() for v in delta.values())
    gradient = rng.normal(size=64).astype(np.float32).tobytes()
    soft = rng.normal(size=(8, 4)).astype(np.float16).tobytes()
    bundle = sign_bundle(to_bytes(tiny), 3, "stm32l4r5", Identity.generate("edge"))
    token = lm_wire.encode(lm_wire.TokenRequest((1, 2), 3, bytes(64)), 1024)
    token_reply = lm_wire.encode(lm_wire.TokenReply(7, True), 1024)
    return {
        MessageType.FRAME: (frame.tobytes(), tiny.input_spec.size),
        MessageType.REPLY: (struct.pack("<iI", 2, 0), 8),
        MessageType.SPLIT_ACTIVATION: (activation, smashed_bytes(64, 4)),
        MessageType.SPLIT_GRADIENT: (gradient, smashed_bytes(64, None)),
        MessageType.FEDERATED_UPDATE: (update, int(sizes[0])),
        MessageType.GLOBAL_MODEL: (global_model, state_bytes(state)),
        MessageType.DISTILL_UPLOAD: (activation + soft, smashed_bytes(64, 4) + len(soft)),
        MessageType.SOFT_TARGETS: (soft, 8 * 4 * 2),
        MessageType.MODEL_BUNDLE: (bundle, len(bundle)),
        MessageType.TOKEN_REQUEST: (
            TokenEnvelope("hlm", False, 5, token).encode(),
            ENVELOPE_BYTES + lm_wire.request_bytes(2, 64, 1024),
        ),
        MessageType.TOKEN_REPLY: (
            ReplyEnvelope(0, 5, token_reply).encode(),
            ENVELOPE_BYTES + lm_wire.reply_bytes(1024),
        ),
    }


def test_every_message_kind_round_trips_at_its_accounted_size() -> None:
    assert QUANT_HEADER_BYTES == 8
    payloads = _payloads()
    assert set(payloads) == set(MessageType)
    device, server = Identity.generate("device-00042"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    device_session, server_session = handshake(device, server, registry)
    costs = protocol_overhead(device.device_id, MCU_PROFILES["stm32l4r5"])
    for kind, (payload, accounted) in payloads.items():
        assert len(payload) == accounted, kind.name
        upward = kind in (MessageType.FRAME, MessageType.SPLIT_ACTIVATION,
                          MessageType.FEDERATED_UPDATE, MessageType.DISTILL_UPLOAD,
                          MessageType.TOKEN_REQUEST)  # fmt: skip
        sender, receiver = (
            (device_session, server_session) if upward else (server_session, device_session)
        )
        wire = sender.seal(kind, payload)
        assert receiver.open(wire) == (kind, payload)
        assert len(wire) == int(costs.wire_bytes(accounted)), kind.name


def test_the_accounted_overhead_is_the_real_one_for_every_id_length() -> None:
    mcu = MCU_PROFILES["stm32l4r5"]
    for device_id in ("d", "device-00042", "x" * 64):
        ident, server = Identity.generate(device_id), Identity.generate("edge")
        registry = Registry()
        registry.enroll(device_id, ident.public_key)
        sender, _ = handshake(ident, server, registry)
        ov: ProtocolOverhead = protocol_overhead(device_id, mcu)
        for n in (1, 256, 70_000):
            assert len(sender.seal(1, bytes(n))) == int(ov.wire_bytes(n))
