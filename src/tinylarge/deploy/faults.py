"""The faults a deployment must survive, when a run injects them, and what happened to the
requests around each (``metrics.json`` ``deploy.faults.<fault>``).

A fault run (`tinylarge deploy --faults`) injects, one after the other on the fleet's
schedule clock, with a quiet stretch before the first:

``edge_kill``       the edge server process gets SIGKILL and is started again at once
``broker_restart``  the broker is stopped (SIGTERM: persistence saved) and started again
``disconnect``      10 % of the devices drop their connection and come back
``flood_replay``    an unenrolled client floods the broker with forged hellos, garbage,
                    mutated and replayed captures of real offloads and replies
``corrupt_bundle``  model bundles that must not install (bits flipped after signing,
                    signed with a foreign key, an old version) are published on the update topic

Per fault, over the requests that arrive from its injection to the next one (its window):
``answered`` by the edge, ``on_device`` (the policy kept them), ``fell_back`` (offloaded, no
reply in time or lost: the device answered itself and knows it), ``lost`` (no answer at all;
goal 0), ``recovery_s`` (from the injection until the edge answers again: the first request
sent after the injection that the edge answered, for ``disconnect`` one of the dropped
devices), and ``accepted_bad``: forged, replayed or corrupted inputs that were acted upon in
the window (replies the devices got to requests they never sent or had answered already,
replies the attacker got, and devices that installed a bad bundle). ``accepted_bad`` is
measured from outside the edge: a frame the edge accepted shows up as a reply.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetEvents, FleetRecords

FAULTS = ("edge_kill", "broker_restart", "disconnect", "flood_replay", "corrupt_bundle")
#: Shortest schedule for a fault run, s: 5 s between faults (an edge restart alone takes
#: 4-7 s on a 2-core machine, and the next fault waits for it).
MIN_FAULT_RUN_S = 30.0


@dataclass(frozen=True)
class FaultPlan:
    """When each fault is injected (s on the schedule clock) and how long it lasts.

    ``broker_down_s``: the broker is off this long. ``disconnect_fraction`` of the devices are
    off for ``disconnect_s``. ``flood_s`` of ``flood_rate_hz`` hostile messages per second.
    A fault is injected at its time or ``settle_s`` after the previous one's peer is back,
    whichever is later (an edge restart takes seconds); one that would fall after the
    schedule's end is not injected.
    """

    at_s: dict[str, float]
    broker_down_s: float = 1.0
    disconnect_fraction: float = 0.1
    disconnect_s: float = 2.0
    flood_s: float = 1.0
    flood_rate_hz: float = 500.0
    #: After a fault's peer is back, the next waits at least this long (devices re-attach).
    settle_s: float = 2.5

    @staticmethod
    def spread(duration_s: float, **options: float) -> FaultPlan:
        """The faults evenly over ``duration_s`` after a quiet first slot: with 5 faults,
        injections at 1/6, 2/6, ... 5/6 of the schedule."""
        if duration_s < MIN_FAULT_RUN_S:
            raise ValueError(
                f"a fault run needs at least {MIN_FAULT_RUN_S:g} s of requests (an edge restart "
                f"takes seconds, and each fault needs a window after it), got {duration_s:g} s"
            )
        step = duration_s / (len(FAULTS) + 1)
        return FaultPlan({name: (k + 1) * step for k, name in enumerate(FAULTS)}, **options)


def disconnected_devices(n_devices: int, fraction: float, seed: int = 0) -> tuple[int, ...]:
    """Which devices a ``disconnect`` fault takes off (at least one), reproducibly."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the disconnected fraction must be in (0, 1], got {fraction}")
    k = max(1, math.ceil(fraction * n_devices))
    chosen = np.random.default_rng(seed).choice(n_devices, size=k, replace=False)
    return tuple(int(d) for d in np.sort(chosen))


@dataclass
class FaultRecord:
    """One injected fault: when (s, schedule clock), when its peer was back, what was sent."""

    name: str
    injected_s: float
    restored_s: float
    detail: dict[str, Any] = field(default_factory=dict)
    #: Inputs of this fault that were acted upon, seen by the attacker (replies it received).
    attacker_accepted: int = 0
    #: Bundle versions that must never be installed.
    bad_versions: tuple[int, ...] = ()


def _first_edge_answer_after(
    records: FleetRecords, t_s: float, devices: npt.NDArray[np.int64] | None
) -> float | None:
    pick = (records.route == BY_EDGE) & (records.sent_s >= t_s)
    if devices is not None:
        pick &= np.isin(records.device, devices)
    if not pick.any():
        return None
    return float(np.min(records.answered_s[pick]) - t_s)


def fault_metrics(
    records: FleetRecords, events: FleetEvents, faults: list[FaultRecord]
) -> dict[str, dict[str, Any]]:
    """``deploy.faults``: per fault, what happened to the requests of its window (module doc)."""
    ordered = sorted(faults, key=lambda f: f.injected_s)
    out: dict[str, dict[str, Any]] = {}
    for k, fault in enumerate(ordered):
        end = ordered[k + 1].injected_s if k + 1 < len(ordered) else math.inf
        window = (records.scheduled_s >= fault.injected_s) & (records.scheduled_s < end)
        route = records.route[window]
        unexpected = np.sum(
            (events.unexpected_reply_s >= fault.injected_s) & (events.unexpected_reply_s < end)
        )
        bad_installs = int(np.isin(events.install_version, fault.bad_versions).sum())
        devices = events.disconnected if fault.name == "disconnect" else None
        out[fault.name] = {
            "injected_s": fault.injected_s,
            "restored_s": fault.restored_s,
            "window_s": None if math.isinf(end) else end - fault.injected_s,
            "requests": int(window.sum()),
            "answered": int(np.sum(route == BY_EDGE)),
            "on_device": int(np.sum(route == ON_DEVICE)),
            "fell_back": int(np.sum(route == TIMED_OUT)),
            "lost": int(np.sum(route < 0)),
            "recovery_s": _first_edge_answer_after(records, fault.injected_s, devices),
            "accepted_bad": int(unexpected) + fault.attacker_accepted + bad_installs,
            **fault.detail,
        }
    return out


def plan_dict(plan: FaultPlan) -> dict[str, Any]:
    """The plan as plain JSON."""
    return asdict(plan)
