"""A fleet spread over several processes (one asyncio loop each), started together.

Device ``i`` goes to process ``i % processes``; every process gets its devices' requests, runs
its own `Fleet`, and the records are merged. Arguments cross the process boundary as bytes and
arrays (keys as raw bytes, the model in its file format, the policy as its JSON state; the
broker's address and the devices' certificate paths as they are).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import Disconnection, Fleet
from tinylarge.deploy.link_emulator import LinkPlan
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import FleetEvents, FleetRecords
from tinylarge.deploy.summary import merge_records
from tinylarge.integrate.inference.contract import Policy
from tinylarge.integrate.inference.persistence import policy_from_dict, policy_to_dict
from tinylarge.secure.identity import Identity
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.model_file import from_bytes, to_bytes


@dataclass(frozen=True)
class FleetRun:
    """One fleet run: who, what model and policy, which requests, where."""

    model: TinyModel
    policy: Policy
    identities: list[Identity]
    edge_key: Ed25519PublicKey
    frames: npt.NDArray[np.int8]
    device: npt.NDArray[np.int64]
    sample: npt.NDArray[np.int64]
    arrival_s: npt.NDArray[np.float64]
    address: BrokerAddress
    topics: Topics
    config: FleetConfig
    link: LinkPlan | None = None
    #: Faults taking devices (global ids) off the broker during the schedule.
    disconnections: tuple[Disconnection, ...] = ()
    #: Gets the schedule's start (`time.time`) when it starts.
    started_file: Path | None = None
    #: Over a locked-down broker: device i's certificate (`tinylarge.deploy.fleet.Fleet`).
    tls: tuple[TlsFiles, ...] | None = None


def _raw_private(identity: Identity) -> tuple[str, bytes]:
    raw = identity.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return identity.device_id, raw


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    identities = [
        Identity(name, Ed25519PrivateKey.from_private_bytes(raw)) for name, raw in args["keys"]
    ]
    fleet = Fleet(
        from_bytes(args["model"]),
        policy_from_dict(args["policy"]),
        identities,
        Ed25519PublicKey.from_public_bytes(args["edge_key"]),
        args["frames"],
        topics=Topics(args["prefix"]),
        config=args["config"],
        tls=args["tls"],
    )
    records = asyncio.run(
        fleet.run(
            args["address"],
            args["device"],
            args["sample"],
            args["arrival_s"],
            start_at=args["start_at"],
            link=args["link"],
            disconnections=args["disconnections"],
            started_file=args["started_file"],
        )
    )
    out = dict(vars(records))
    out["installed"] = np.array([d.version for d in fleet.devices], np.int64)
    out["events"] = fleet.events()
    return out


def _local(
    faults: tuple[Disconnection, ...], mine: npt.NDArray[np.int64]
) -> tuple[Disconnection, ...]:
    """``faults`` restricted to the devices ``mine`` (global ids), renumbered as their index."""
    local = {int(d): i for i, d in enumerate(mine)}
    return tuple(
        replace(f, devices=tuple(local[d] for d in f.devices if d in local)) for f in faults
    )


def run_fleet(run: FleetRun, processes: int = 1) -> tuple[FleetRecords, list[int], FleetEvents]:
    """Run the fleet in ``processes`` processes (1: in this one); the merged records, each
    device's installed model version at the end, and what the devices saw (`FleetEvents`)."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if processes == 1:
        fleet = Fleet(run.model, run.policy, run.identities, run.edge_key, run.frames,
                      topics=run.topics, config=run.config, tls=run.tls)  # fmt: skip
        records = asyncio.run(
            fleet.run(run.address, run.device, run.sample, run.arrival_s, link=run.link,
                      disconnections=run.disconnections, started_file=run.started_file)
        )  # fmt: skip
        return records, [d.version for d in fleet.devices], fleet.events()
    n = len(run.identities)
    start_at = time.time() + 2.0 + n / 500  # time to connect and attach every device
    jobs: list[dict[str, Any]] = []
    for k in range(processes):
        mine = np.arange(k, n, processes)
        local = {int(d): i for i, d in enumerate(mine)}
        pick = np.isin(run.device, mine)
        jobs.append(
            {
                "keys": [_raw_private(run.identities[d]) for d in mine],
                "model": to_bytes(run.model),
                "policy": policy_to_dict(run.policy),
                "edge_key": run.edge_key.public_bytes(Encoding.Raw, PublicFormat.Raw),
                "frames": run.frames,
                "device": np.array([local[int(d)] for d in run.device[pick]], np.int64),
                "sample": run.sample[pick],
                "arrival_s": run.arrival_s[pick],
                "address": run.address,
                "tls": None if run.tls is None else [run.tls[d] for d in mine],
                "prefix": run.topics.prefix,
                "config": run.config,
                "start_at": start_at,
                "link": None
                if run.link is None
                else LinkPlan(*(getattr(run.link, f.name)[pick] for f in fields(LinkPlan))),
                "global_ids": mine,
                "disconnections": _local(run.disconnections, mine),
                "started_file": run.started_file if k == 0 else None,
            }
        )
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_worker, jobs)
    parts: list[FleetRecords] = []
    events: list[FleetEvents] = []
    installed = np.zeros(n, np.int64)
    for job, result in zip(jobs, results, strict=True):
        records = FleetRecords(
            job["global_ids"][result["device"]], result["sample"], result["scheduled_s"]
        )
        for name, value in result.items():
            if name not in ("device", "sample", "scheduled_s", "installed", "events"):
                setattr(records, name, value)
        parts.append(records)
        installed[job["global_ids"]] = result["installed"]
        part_events: FleetEvents = result["events"]
        part_events.disconnected = job["global_ids"][part_events.disconnected]
        events.append(part_events)
    return merge_records(parts), installed.tolist(), FleetEvents.merge(events)
