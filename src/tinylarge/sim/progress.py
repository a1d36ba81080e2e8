"""How the pipeline reports progress: a small protocol the CLI implements with rich."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress events from `tinylarge.sim.run`.

    Every event does nothing unless a reporter overrides it, so a class that subclasses
    `Reporter` implements only the events it shows.
    """

    def stage_started(self, name: str, title: str) -> None:
        """The stage ``name`` started; ``title`` says what it does."""
        return None

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        """The stage ``name`` finished after ``seconds`` (wall, s) with a one-line summary."""
        return None

    def part_skipped(self, path: str, reason: str) -> None:
        """A stage left out the part at metrics path ``path`` and says why."""
        return None

    def part_warning(self, path: str, message: str) -> None:
        """The part at metrics path ``path`` ran but missed what it was tuned for."""
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
        """A long loop (training the model ``role``, co-learning rounds, ...) has done
        ``batch`` of the ``batches`` steps of ``epoch`` (0-based) of ``epochs``;
        ``val_accuracy`` is the latest accuracy in [0, 1], None before there is one."""
        return None


class SilentReporter(Reporter):
    """A `Reporter` that ignores every event (library use and tests)."""
