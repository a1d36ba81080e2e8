"""Per-request records of a fleet run: when each request arrived, was sent and answered, by
whom, with which model, and the bytes both ways; and what the devices saw besides requests
(`FleetEvents`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: Route codes of a finished request.
ON_DEVICE, BY_EDGE, TIMED_OUT, UNFINISHED = 0, 1, 2, -1


@dataclass
class FleetRecords:
    """Per-request records, arrays of shape (m,), in schedule order.

    Times are seconds on the fleet's monotonic clock from the run's start. ``bytes_up`` and
    ``bytes_down`` are the protected messages (payload + header + tag), as the simulator
    counts them; ``mqtt_bytes_up`` / ``_down`` the MQTT PUBLISH packets around them;
    ``transport_bytes_up`` / ``_down`` what those packets put on the TCP stream over the
    deployment's transport (TLS records included; `tinylarge.secure.transport.stream_bytes`),
    as the simulator charges the radio.
    """

    device: npt.NDArray[np.int64]
    sample: npt.NDArray[np.int64]
    scheduled_s: npt.NDArray[np.float64]
    offload: npt.NDArray[np.bool_] = field(init=False)
    sent_s: npt.NDArray[np.float64] = field(init=False)
    answered_s: npt.NDArray[np.float64] = field(init=False)
    route: npt.NDArray[np.int64] = field(init=False)
    answer: npt.NDArray[np.int64] = field(init=False)
    model_version: npt.NDArray[np.int64] = field(init=False)
    bytes_up: npt.NDArray[np.int64] = field(init=False)
    bytes_down: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_up: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_down: npt.NDArray[np.int64] = field(init=False)
    transport_bytes_up: npt.NDArray[np.int64] = field(init=False)
    transport_bytes_down: npt.NDArray[np.int64] = field(init=False)
    #: offloads: the request id (-1: none), when the frame was handed to MQTT and when the
    #: reply came back (before any emulated downlink)
    request_id: npt.NDArray[np.int64] = field(init=False)
    #: when the device's own part (arrival + emulated MCU time) was planned to end
    ready_s: npt.NDArray[np.float64] = field(init=False)
    published_s: npt.NDArray[np.float64] = field(init=False)
    replied_s: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        m = self.device.size
        self.offload = np.zeros(m, bool)
        self.sent_s = np.full(m, np.nan)
        self.answered_s = np.full(m, np.nan)
        self.route = np.full(m, UNFINISHED, np.int64)
        self.answer = np.full(m, -1, np.int64)
        self.model_version = np.zeros(m, np.int64)
        self.request_id = np.full(m, -1, np.int64)
        self.ready_s = np.full(m, np.nan)
        self.published_s = np.full(m, np.nan)
        self.replied_s = np.full(m, np.nan)
        for name in ("bytes_up", "bytes_down", "mqtt_bytes_up", "mqtt_bytes_down",
                     "transport_bytes_up", "transport_bytes_down"):  # fmt: skip
            setattr(self, name, np.zeros(m, np.int64))

    @property
    def latency_s(self) -> npt.NDArray[np.float64]:
        """From the request's arrival to its answer, s."""
        return self.answered_s - self.scheduled_s

    @property
    def lost(self) -> int:
        """Requests that ended in no route (must be 0)."""
        return int(np.sum(self.route == UNFINISHED))


@dataclass
class FleetEvents:
    """What the devices saw besides their own requests, times on the records' clock (s).

    ``unexpected_reply_s``: authenticated replies that answer no request of the device, or a
    request answered before. The edge never answers one request twice, so each is an input the
    edge must not have accepted (a replayed or forged frame): the security layer failed.
    ``refused_bundles``: pushed bundles the devices refused, by reason (`verify_bundle`).
    ``rejected_messages``: downlink messages that failed authentication or the replay window.
    ``install_s`` / ``install_version``: when a device installed which model version.
    ``disconnected``: devices taken off the broker by a `Disconnection` fault.
    ``started_unix``: the schedule's start on the wall clock (`time.time`).
    ``unattached_at_start``: devices without a session when the schedule started (no edge
    answered their hellos in time; they answered their requests themselves until attached).
    ``hello_retries``: hellos that went unanswered for their whole wait (another followed).
    """

    unexpected_reply_s: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    refused_bundles: Counter[str] = field(default_factory=Counter)
    rejected_messages: int = 0
    install_s: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    install_version: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    disconnected: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    started_unix: float = float("nan")
    unattached_at_start: int = 0
    hello_retries: int = 0

    @staticmethod
    def merge(parts: list[FleetEvents]) -> FleetEvents:
        """Events of several fleet processes (device ids already global) as one."""
        merged = FleetEvents(
            unexpected_reply_s=np.sort(np.concatenate([p.unexpected_reply_s for p in parts])),
            rejected_messages=sum(p.rejected_messages for p in parts),
            install_s=np.concatenate([p.install_s for p in parts]),
            install_version=np.concatenate([p.install_version for p in parts]),
            disconnected=np.sort(np.concatenate([p.disconnected for p in parts])),
            started_unix=min((p.started_unix for p in parts), default=float("nan")),
            unattached_at_start=sum(p.unattached_at_start for p in parts),
            hello_retries=sum(p.hello_retries for p in parts),
        )
        for part in parts:
            merged.refused_bundles.update(part.refused_bundles)
        return merged
