"""The fault injector of a fault run (`tinylarge deploy --faults`): it breaks things on the
fleet's schedule, one after the other (`tinylarge.deploy.faults` says what and when), from a
thread of its own beside the supervisor.

On a locked-down broker its adversary holds stolen credentials
(`tinylarge.deploy.adversary.StolenCredentials`); the records of ``flood_replay`` and
``corrupt_bundle`` then say what the broker refused it meanwhile (``broker_refused``, by
reason) and, for the flood, how many messages of other devices it overheard (``overheard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tinylarge.deploy.adversary import Adversary, StolenCredentials, bad_bundles
from tinylarge.deploy.broker import Broker, BrokerAddress
from tinylarge.deploy.faults import FaultPlan, FaultRecord
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.live_loop import read_version
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.supervisor import EdgeProcess


class FaultInjector:
    """Injects the plan's faults in a thread of its own, timed from the fleet's start (read
    from ``started_file``); the records of what it did are in `records` after `join`."""

    def __init__(
        self,
        plan: FaultPlan,
        *,
        edge: EdgeProcess,
        broker: Broker | None,
        address: BrokerAddress,
        topics: Topics,
        layout: DeployLayout,
        model_bytes: bytes,
        target: str,
        started_file: Path,
        disconnect_trigger: Path,
        credentials: StolenCredentials | None = None,
    ) -> None:
        self.plan, self.edge, self.broker, self.address = plan, edge, broker, address
        self.topics, self.layout, self.started_file = topics, layout, started_file
        self.disconnect_trigger = disconnect_trigger
        self.model_bytes, self.target = model_bytes, target
        self.credentials = credentials
        #: the adversary's observations (`Adversary.refused`) at the end
        self.refused: dict[str, int] = {}
        self.records: list[FaultRecord] = []
        self.skipped: dict[str, str] = {}
        #: faults whose injection failed, with the error (the others still run)
        self.errors: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="fault-injector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float = 60.0) -> None:
        """Stop listening and wait for the thread (the faults already injected stay)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: done anyway
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._inject())
        except Exception as error:  # reported by the caller
            self.errors["injector"] = f"{type(error).__name__}: {error}"

    async def _started(self) -> float:
        while not self.started_file.is_file() and not self._stopped():
            await asyncio.sleep(0.05)
        text = self.started_file.read_text().strip() if self.started_file.is_file() else ""
        return float(text) if text else float("nan")

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _inject(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        adversary = Adversary(self.address, self.topics, credentials=self.credentials)
        listening = asyncio.create_task(adversary.run(self._stop))
        try:
            t0 = await self._started()
            settled = t0  # the previous fault's peer is back and has settled
            for name, at_s in sorted(self.plan.at_s.items(), key=lambda kv: kv[1]):
                delay = max(t0 + at_s, settled) - time.time()
                try:
                    await asyncio.wait_for(self._stop.wait(), max(0.0, delay))
                    self.skipped[name] = "the schedule ended before its turn"
                    continue
                except TimeoutError:
                    pass
                injected = time.time() - t0
                try:
                    record = await self._one(name, adversary)
                except Exception as error:  # reported; the next faults still run
                    self.errors[name] = f"{type(error).__name__}: {error}"
                    continue
                if record is not None:
                    settled = record.restored_s + self.plan.settle_s
                    record.injected_s, record.restored_s = injected, record.restored_s - t0
                    record.detail["late_s"] = injected - at_s  # a slow previous fault
                    self.records.append(record)
        finally:
            self._stop.set()
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            self.refused = dict(adversary.refused)

    def _refused_since(self, adversary: Adversary, before: Counter[str]) -> dict[str, Any]:
        """What the broker refused the adversary since ``before`` (locked-down broker only)."""
        if self.credentials is None:
            return {}
        now = adversary.refused
        return {"broker_refused": {k: now[k] - before[k] for k in now}}

    async def _one(self, name: str, adversary: Adversary) -> FaultRecord | None:
        """Inject fault ``name``; its record with ``restored_s`` on the wall clock."""
        plan = self.plan
        if name == "edge_kill":
            await asyncio.to_thread(self.edge.kill)
            await asyncio.to_thread(self.edge.start)
            return FaultRecord(name, 0.0, time.time())
        if name == "broker_restart":
            if self.broker is None:
                self.skipped[name] = "the broker is not one this run started (--broker)"
                return None
            await asyncio.to_thread(self.broker.stop)
            await asyncio.sleep(plan.broker_down_s)
            await asyncio.to_thread(self.broker.start)
            return FaultRecord(name, 0.0, time.time(), {"down_s": plan.broker_down_s})
        if name == "disconnect":  # the fleet drops its devices when the trigger appears
            self.disconnect_trigger.touch()
            await asyncio.sleep(plan.disconnect_s)
            return FaultRecord(
                name,
                0.0,
                time.time(),
                {"fraction": plan.disconnect_fraction, "off_s": plan.disconnect_s},
            )
        refused = Counter(adversary.refused)
        if name == "flood_replay":
            before = adversary.answered
            sent = dict(await adversary.flood(plan.flood_s, plan.flood_rate_hz))
            await asyncio.sleep(0.5)  # replies to anything accepted arrive meanwhile
            detail = {"sent": sent, "rate_hz": plan.flood_rate_hz,
                      **self._refused_since(adversary, refused)}  # fmt: skip
            if self.credentials is not None:
                detail["overheard"] = adversary.overheard
            return FaultRecord(name, 0.0, time.time(), detail,
                               attacker_accepted=adversary.answered - before)  # fmt: skip
        if name == "corrupt_bundle":
            bundles = bad_bundles(
                self.model_bytes, self.target, self.layout.edge(), self._pushed_version()
            )
            await adversary.publish(self.topics.model, [b for b, _ in bundles.values()], name)
            bad = tuple(v for kind, (_, v) in bundles.items() if kind != "rollback")
            detail = {"bundles": sorted(bundles), **self._refused_since(adversary, refused)}
            return FaultRecord(name, 0.0, time.time(), detail, bad_versions=bad)
        raise ValueError(f"unknown fault {name!r}")

    def _pushed_version(self) -> int:
        """The newest model version the edge has pushed (0: none)."""
        return read_version(self.layout.edge_state)
