"""How the pipeline reports progress: a small protocol the CLI implements with rich."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress events from `tinylarge.sim.run`."""

    def stage_started(self, name: str, title: str) -> None: ...

    def stage_finished(self, name: str, seconds: float, summary: str) -> None: ...

    def training(
        self,
        role: str,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        val_accuracy: float | None,
    ) -> None: ...


class SilentReporter:
    """A `Reporter` that ignores every event (library use and tests)."""

    def stage_started(self, name: str, title: str) -> None:
        return None

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        return None

    def training(
        self,
        role: str,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        val_accuracy: float | None,
    ) -> None:
        return None
