"""How `tinylarge.deploy.run` reports progress: a small protocol the CLI implements with rich
(and tests use to act at a given moment of a run)."""

from __future__ import annotations

from typing import Protocol

from tinylarge.deploy.protocol import Topics


class DeployProgress(Protocol):
    """Receives the events of a deployment, in this order."""

    def edge_ready(self, pid: int, topics: Topics) -> None:
        """The edge server process ``pid`` is connected and serving on ``topics``."""

    def message(self, text: str) -> None:
        """A line for the user."""

    def schedule_started(self, started_unix: float) -> None:
        """Every device is attached (or the wait for them is over): the fleet's schedule
        started at ``started_unix`` (`time.time`, s)."""

    def fleet_running(self, elapsed_s: float, duration_s: float) -> None:
        """About every 0.2 s while the fleet runs: ``elapsed_s`` since it started (capped at
        ``duration_s``, the schedule's length)."""

    def fleet_finished(self) -> None:
        """The fleet process has ended (also when the run fails)."""


class SilentProgress:
    """A `DeployProgress` that ignores every event (library use and benchmarks)."""

    def edge_ready(self, pid: int, topics: Topics) -> None:
        return None

    def message(self, text: str) -> None:
        return None

    def schedule_started(self, started_unix: float) -> None:
        return None

    def fleet_running(self, elapsed_s: float, duration_s: float) -> None:
        return None

    def fleet_finished(self) -> None:
        return None
