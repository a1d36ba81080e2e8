"""Per-request records of a fleet run: when each request arrived, was sent and answered, by
whom, with which model, and the bytes both ways."""

from __future__ import annotations

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
    counts them; ``mqtt_bytes_up`` / ``_down`` the MQTT PUBLISH packets around them.
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

    def __post_init__(self) -> None:
        m = self.device.size
        self.offload = np.zeros(m, bool)
        self.sent_s = np.full(m, np.nan)
        self.answered_s = np.full(m, np.nan)
        self.route = np.full(m, UNFINISHED, np.int64)
        self.answer = np.full(m, -1, np.int64)
        self.model_version = np.zeros(m, np.int64)
        for name in ("bytes_up", "bytes_down", "mqtt_bytes_up", "mqtt_bytes_down"):
            setattr(self, name, np.zeros(m, np.int64))

    @property
    def latency_s(self) -> npt.NDArray[np.float64]:
        """From the request's arrival to its answer, s."""
        return self.answered_s - self.scheduled_s

    @property
    def lost(self) -> int:
        """Requests that ended in no route (must be 0)."""
        return int(np.sum(self.route == UNFINISHED))
