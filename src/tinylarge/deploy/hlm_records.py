"""Per-token records of the hybrid language model's deployment: when each device's token
started and became final, by which route, with which bytes; and the metrics computed from them.

A token ends in exactly one route (`tinylarge.deploy.records`): ``ON_DEVICE`` (the scheme kept
the draft without sending anything), ``BY_EDGE`` (the edge's reply), ``TIMED_OUT`` (sent, no
reply in time: the device's own token), `FALLBACK` (the emulated radio had no uplink, the device
knew at once and kept its draft, as the simulator's ``fallback``); ``UNFINISHED`` tokens are
lost (must be none).

A token the edge answered on its first and only request also carries that request's id and
its round trip at the device; `round_trip_split` joins them with the edge's per-reply log to
measure the message transport (``deploy.transport_s`` of a text deployment).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, UNFINISHED
from tinylarge.net.message_stats import percentile_summary

#: Route of a token whose request found no uplink (outage) and which kept its draft.
FALLBACK = 3


@dataclass
class TokenRecords:
    """One scheme's run: arrays of shape (devices, tokens).

    Times are seconds on the fleet's monotonic clock from the run's start. ``payload_up`` is
    the first request's payload (the scheme's message and the envelope); ``bytes_up`` and
    ``bytes_down`` are the sealed messages of all attempts (payload + the session's header and
    tag), ``mqtt_bytes_*`` the MQTT PUBLISH packets around them, ``transport_bytes_*`` what
    those packets put on the TCP stream over the deployment's transport (TLS 1.3 records over
    a locked-down broker; `tinylarge.secure.transport.stream_bytes` per packet).
    """

    devices: int
    tokens: int
    started_s: npt.NDArray[np.float64] = field(init=False)
    ended_s: npt.NDArray[np.float64] = field(init=False)
    route: npt.NDArray[np.int64] = field(init=False)
    uploaded: npt.NDArray[np.bool_] = field(init=False)
    accepted: npt.NDArray[np.bool_] = field(init=False)
    token: npt.NDArray[np.int64] = field(init=False)
    payload_up: npt.NDArray[np.int64] = field(init=False)
    bytes_up: npt.NDArray[np.int64] = field(init=False)
    bytes_down: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_up: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_down: npt.NDArray[np.int64] = field(init=False)
    transport_bytes_up: npt.NDArray[np.int64] = field(init=False)
    transport_bytes_down: npt.NDArray[np.int64] = field(init=False)
    attempts: npt.NDArray[np.int64] = field(init=False)
    full: npt.NDArray[np.int64] = field(init=False)
    #: the emulated radio had no uplink for the request (nothing sent)
    outage: npt.NDArray[np.bool_] = field(init=False)
    #: the emulated radio lost the request (outage, HARQ failure) or its reply
    radio_lost: npt.NDArray[np.bool_] = field(init=False)
    #: a token answered on its first and only request: that request's session id (else -1),
    #: when it was handed to MQTT and when its reply arrived (else NaN), s from the start
    request_id: npt.NDArray[np.int64] = field(init=False)
    published_s: npt.NDArray[np.float64] = field(init=False)
    replied_s: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.devices, self.tokens)
        self.started_s, self.ended_s = np.full(shape, np.nan), np.full(shape, np.nan)
        self.route = np.full(shape, UNFINISHED, np.int64)
        self.token = np.full(shape, -1, np.int64)
        self.request_id = np.full(shape, -1, np.int64)
        self.published_s, self.replied_s = np.full(shape, np.nan), np.full(shape, np.nan)
        for name in ("uploaded", "accepted", "outage", "radio_lost"):
            setattr(self, name, np.zeros(shape, np.bool_))
        for name in ("payload_up", "bytes_up", "bytes_down", "mqtt_bytes_up",
                     "mqtt_bytes_down", "transport_bytes_up", "transport_bytes_down",
                     "attempts", "full"):  # fmt: skip
            setattr(self, name, np.zeros(shape, np.int64))

    @property
    def latency_s(self) -> npt.NDArray[np.float64]:
        """From the device starting on a token to the token being final, s."""
        return self.ended_s - self.started_s

    @property
    def lost(self) -> int:
        """Tokens that ended in no route (must be 0)."""
        return int(np.sum(self.route == UNFINISHED))

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every per-token array by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.init}


def save_token_records(records: dict[str, TokenRecords], path: str | Path) -> None:
    """All schemes' records in one ``.npz`` (keys ``SCHEME/FIELD``)."""
    arrays: dict[str, Any] = {
        f"{scheme}/{name}": value
        for scheme, r in records.items()
        for name, value in r.arrays().items()
    }
    np.savez(path, **arrays)


def load_token_records(path: str | Path) -> dict[str, TokenRecords]:
    """The records `save_token_records` wrote, by scheme."""
    out: dict[str, TokenRecords] = {}
    with np.load(path) as data:
        for key in data.files:
            scheme, _, name = key.partition("/")
            value = data[key]
            if scheme not in out:
                out[scheme] = TokenRecords(int(value.shape[0]), int(value.shape[1]))
            setattr(out[scheme], name, value)
    return out


def token_metrics(records: TokenRecords) -> dict[str, Any]:
    """``hybrid_lm_deploy.<scheme>``: tokens/s per device (mean over devices of tokens over
    the sum of their latencies, s), per-token latency percentiles (s), the fraction of tokens
    whose request went on air (``uplink_fraction``), bytes per token each way (sealed
    messages, all attempts; ``transport_bytes_*``: on the TCP stream, MQTT and TLS framing
    included), and the routes."""
    latency = records.latency_s
    done = records.route != UNFINISHED
    n = max(1, int(done.sum()))
    per_device_s = np.where(done, latency, 0.0).sum(axis=1)
    finished = done.all(axis=1) & (per_device_s > 0)
    tokens_per_s = records.tokens / per_device_s[finished] if finished.any() else np.zeros(0)
    lat = percentile_summary(latency[done], (50, 99))
    on_air = records.uploaded & ~records.outage
    return {
        "tokens_per_s": float(tokens_per_s.mean()) if tokens_per_s.size else None,
        "p50_token_latency_s": lat["p50"],
        "p99_token_latency_s": lat["p99"],
        "mean_token_latency_s": float(latency[done].mean()) if done.any() else None,
        "uplink_fraction": float(on_air[done].mean()) if done.any() else None,
        "bytes_up_per_token": float(records.bytes_up.sum() / n),
        "bytes_down_per_token": float(records.bytes_down.sum() / n),
        "mqtt_bytes_per_token": float(
            (records.mqtt_bytes_up.sum() + records.mqtt_bytes_down.sum()) / n
        ),
        "transport_bytes_up_per_token": float(records.transport_bytes_up.sum() / n),
        "transport_bytes_down_per_token": float(records.transport_bytes_down.sum() / n),
        "tokens": int(records.route.size),
        "on_device": int(np.sum(records.route == ON_DEVICE)),
        "by_edge": int(np.sum(records.route == BY_EDGE)),
        "timed_out": int(np.sum(records.route == TIMED_OUT)),
        "fallback": int(np.sum(records.route == FALLBACK)),
        "radio_lost": int(records.radio_lost.sum()),
        "lost": records.lost,
        "accepted_fraction": _accepted_fraction(records),
        "retries": int(np.maximum(records.attempts - 1, 0).sum()),
        "full_requests": int(records.full.sum()),
    }


def _accepted_fraction(records: TokenRecords) -> float | None:
    """Of the tokens the edge decided from a draft, the fraction that is the draft."""
    verified = records.route == BY_EDGE
    return float(records.accepted[verified].mean()) if verified.any() else None


def edge_times(answered_path: str | Path) -> dict[tuple[str, int], float]:
    """The edge's time per reply (`EdgeServer.write_answered`): from the request's arrival to
    its sealed reply, s, by (device id, request id). A key the edge logged more than once (a
    session's ids start again after a new handshake) is ambiguous and left out."""
    with np.load(answered_path) as data:
        keys = list(zip(data["device"].tolist(), data["request"].tolist(), strict=True))
        times = data["in_edge_s"].tolist()
    seen = Counter(keys)
    return {(str(d), int(r)): float(t) for (d, r), t in zip(keys, times, strict=True)
            if seen[(d, r)] == 1}  # fmt: skip


def _round_trips(
    records: TokenRecords, device_ids: Sequence[str], edge: dict[tuple[str, int], float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The device's round trip and the edge's time of every timed token the edge logged, s."""
    rtt, in_edge = [], []
    for row, k in zip(*np.nonzero(records.request_id >= 0), strict=True):
        key = (device_ids[int(row)], int(records.request_id[row, k]))
        if key in edge:
            rtt.append(records.replied_s[row, k] - records.published_s[row, k])
            in_edge.append(edge[key])
    return np.array(rtt, np.float64), np.array(in_edge, np.float64)


def round_trip_split(
    records: Mapping[str, TokenRecords], device_ids: Sequence[str], answered_path: str | Path
) -> dict[str, Any]:
    """Split each token's round trip into the edge's part and the transport's, as
    `tinylarge.deploy.summary.round_trip_split` does for frames.

    A device times a token answered on its only request from handing it to MQTT to the
    reply's arrival (``replied_s - published_s``, without the emulated radio); the edge logs,
    per reply, the time from the request's arrival to its sealed reply. Matched on (device,
    request id), the difference is the transport: the broker's relays both ways and both
    clients' stacks (MQTT, sealing and opening).

    Parameters
    ----------
    records : mapping of scheme -> TokenRecords
    device_ids : sequence of str
        Device id of each records row.
    answered_path : path
        The edge's ``edge_answered.npz``.

    Returns
    -------
    dict
        ``matched`` (round trips), percentiles (s) of ``round_trip_s``, ``in_edge_s`` and
        ``transport_s`` over every scheme, and ``by_scheme.<scheme>`` with ``matched`` and
        ``transport_s`` of that scheme's tokens.
    """
    edge = edge_times(answered_path)
    parts = {name: _round_trips(r, device_ids, edge) for name, r in records.items()}
    rtt = np.concatenate([np.zeros(0), *(p[0] for p in parts.values())])
    in_edge = np.concatenate([np.zeros(0), *(p[1] for p in parts.values())])
    return {
        "matched": int(rtt.size),
        "round_trip_s": percentile_summary(rtt),
        "in_edge_s": percentile_summary(in_edge),
        "transport_s": percentile_summary(rtt - in_edge),
        "by_scheme": {
            name: {"matched": int(r.size), "transport_s": percentile_summary(r - e)}
            for name, (r, e) in parts.items()
        },
    }
