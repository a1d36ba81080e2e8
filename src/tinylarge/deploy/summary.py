"""``metrics.json`` ``deploy``: what a deployed run measured, from the devices' records and the
edge's counters. Its keys are a contract: add beside them, never rename."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetEvents, FleetRecords
from tinylarge.net.message_stats import percentile_summary

RECORD_FIELDS = (
    "device", "sample", "scheduled_s", "offload", "sent_s", "answered_s", "route", "answer",
    "model_version", "bytes_up", "bytes_down", "mqtt_bytes_up", "mqtt_bytes_down",
    "request_id", "ready_s", "published_s", "replied_s", "transport_bytes_up",
    "transport_bytes_down",
)  # fmt: skip


def save_records(
    records: FleetRecords,
    path: str | Path,
    *,
    labels: npt.NDArray[np.int64],
    installed: list[int],
    events: FleetEvents | None = None,
) -> None:
    """All per-request arrays, each request's true class, each device's final model version
    and the devices' other events, in one ``.npz``."""
    arrays = {name: getattr(records, name) for name in RECORD_FIELDS}
    ev = events or FleetEvents()
    np.savez(
        path,
        **arrays,
        label=labels,
        installed=np.asarray(installed, np.int64),
        event_unexpected_reply_s=ev.unexpected_reply_s,
        event_install_s=ev.install_s,
        event_install_version=ev.install_version,
        event_disconnected=ev.disconnected,
        event_scalars=np.array(
            json.dumps(
                {
                    "refused_bundles": dict(ev.refused_bundles),
                    "rejected_messages": ev.rejected_messages,
                    "started_unix": ev.started_unix,
                    "unattached_at_start": ev.unattached_at_start,
                    "hello_retries": ev.hello_retries,
                }
            )
        ),
    )


def load_events(path: str | Path) -> FleetEvents:
    """The `FleetEvents` that `save_records` stored."""
    with np.load(path) as data:
        scalars = json.loads(str(data["event_scalars"]))
        return FleetEvents(
            unexpected_reply_s=data["event_unexpected_reply_s"],
            refused_bundles=Counter(scalars["refused_bundles"]),
            rejected_messages=int(scalars["rejected_messages"]),
            install_s=data["event_install_s"],
            install_version=data["event_install_version"],
            disconnected=data["event_disconnected"],
            started_unix=float(scalars["started_unix"]),
            unattached_at_start=int(scalars.get("unattached_at_start", 0)),
            hello_retries=int(scalars.get("hello_retries", 0)),
        )


def load_records(path: str | Path) -> tuple[FleetRecords, npt.NDArray[np.int64], list[int]]:
    """``(records, labels, installed versions)`` of `save_records`."""
    with np.load(path) as data:
        records = FleetRecords(data["device"], data["sample"], data["scheduled_s"])
        for name in RECORD_FIELDS[3:]:
            setattr(records, name, data[name])
        return records, data["label"], data["installed"].tolist()


def merge_records(parts: list[FleetRecords]) -> FleetRecords:
    """Records of several fleet processes as one, in arrival order."""
    device = np.concatenate([p.device for p in parts])
    sample = np.concatenate([p.sample for p in parts])
    scheduled = np.concatenate([p.scheduled_s for p in parts])
    order = np.argsort(scheduled, kind="stable")
    merged = FleetRecords(device[order], sample[order], scheduled[order])
    for name in RECORD_FIELDS[3:]:
        setattr(merged, name, np.concatenate([getattr(p, name) for p in parts])[order])
    return merged


def _counts(values: npt.NDArray[np.int64]) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


def deploy_metrics(
    records: FleetRecords,
    labels: npt.NDArray[np.int64],
    server: dict[str, Any],
    *,
    devices: int,
    installed_versions: list[int],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``deploy`` section: requests, routes, accuracy, latency, bytes, edge, rejections.

    ``labels`` is the true class of every request (shape (m,), as the records).
    """
    m = records.device.size
    answered = records.route >= 0
    correct = records.answer == labels
    per = max(m, 1)
    return {
        "devices": devices,
        "requests": m,
        "answered": int(answered.sum()),
        "answered_by_edge": int(np.sum(records.route == BY_EDGE)),
        "answered_on_device": int(np.sum(records.route == ON_DEVICE)),
        "timed_out": int(np.sum(records.route == TIMED_OUT)),
        "lost": records.lost,
        "accuracy": float(correct.mean()) if m else None,
        "offload_fraction": float(records.offload.mean()) if m else None,
        "latency_s": percentile_summary(records.latency_s[answered]),
        "edge_latency_s": percentile_summary(records.latency_s[records.route == BY_EDGE]),
        "bytes_up_per_inference": float(records.bytes_up.sum() / per),
        "bytes_down_per_inference": float(records.bytes_down.sum() / per),
        "mqtt_bytes_up_per_inference": float(records.mqtt_bytes_up.sum() / per),
        "mqtt_bytes_down_per_inference": float(records.mqtt_bytes_down.sum() / per),
        "transport_bytes_up_per_inference": float(records.transport_bytes_up.sum() / per),
        "transport_bytes_down_per_inference": float(records.transport_bytes_down.sum() / per),
        "edge": {
            "requests_per_s": server.get("requests_per_s"),
            "mean_batch": server.get("mean_batch"),
            "max_batch": server.get("max_batch"),
            "batch_size_counts": server.get("batch_size_counts", {}),
            "service_s": server.get("service_s"),
            "handshakes": server.get("handshakes"),
            "pushed": server.get("pushed", []),
        },
        "rejected": server.get("rejected", {}),
        "model_versions": {str(k): v for k, v in sorted(Counter(installed_versions).items())},
        "requests_by_model_version": {
            str(k): int(v)
            for k, v in zip(*np.unique(records.model_version, return_counts=True), strict=True)
        },
        **(extra or {}),
    }


def round_trip_split(
    records: FleetRecords, device_ids: list[str], answered_path: str | Path
) -> dict[str, Any]:
    """Split each edge-answered round trip into the edge's part and the transport's.

    The device measures from handing its frame to MQTT to receiving the reply
    (``replied_s - published_s``); the edge logs, per reply, the time from the frame's arrival
    to the sealed reply (`EdgeServer.write_answered`). Matched on (device, request id), the
    difference is the transport: the broker's relays both ways and both clients' stacks.
    Percentiles of each, s, and the number of round trips matched.
    """
    with np.load(answered_path) as data:
        edge = {
            (str(d), int(r)): float(t)
            for d, r, t in zip(data["device"], data["request"], data["in_edge_s"], strict=True)
        }
    rtt, in_edge = [], []
    for i in np.flatnonzero(records.route == BY_EDGE):
        key = (device_ids[int(records.device[i])], int(records.request_id[i]))
        if key in edge:
            rtt.append(records.replied_s[i] - records.published_s[i])
            in_edge.append(edge[key])
    device_rtt, at_edge = np.array(rtt, np.float64), np.array(in_edge, np.float64)
    return {
        # the emulator's own timing error: the device acts this late after its planned instant
        "agent_lateness_s": percentile_summary(records.sent_s - records.ready_s),
        "matched": int(device_rtt.size),
        "round_trip_s": percentile_summary(device_rtt),
        "in_edge_s": percentile_summary(at_edge),
        "transport_s": percentile_summary(device_rtt - at_edge),
    }
