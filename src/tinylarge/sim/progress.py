"""How the pipeline reports progress: a small protocol the CLI implements with rich."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress events from `tinylarge.sim.run`."""

    def stage_started(self, name: str, title: str) -> None: ...

    def stage_finished(self, name: str, seconds: float, summary: str) -> None: ...

    def part_skipped(self, path: str, reason: str) -> None:
        """A stage left out the part at metrics path ``path`` and says why."""

    def part_warning(self, path: str, message: str) -> None:
        """The part at metrics path ``path`` ran but missed what it was tuned for."""

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

    def part_skipped(self, path: str, reason: str) -> None:
        return None

    def part_warning(self, path: str, message: str) -> None:
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
