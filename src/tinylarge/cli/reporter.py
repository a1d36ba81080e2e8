"""A rich `Reporter`: one line per finished stage and a live progress bar while training."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichReporter:
    """Shows the pipeline's progress on a console; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def stage_started(self, name: str, title: str) -> None:
        self._bars[name] = self.progress.add_task(title, total=None, status="")

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        bar = self._bars.pop(name, None)
        if bar is not None:
            self.progress.remove_task(bar)
        for key in [k for k in self._bars if k.startswith("training:")]:
            self.progress.remove_task(self._bars.pop(key))
        self.console.print(f"[green]✓[/] {name} [dim]({seconds:.1f} s)[/]  {summary}")

    def part_skipped(self, path: str, reason: str) -> None:
        self.console.print(f"  [yellow]! skipped[/] {path}: {reason}")

    def part_warning(self, path: str, message: str) -> None:
        self.console.print(f"  [yellow]! warning[/] {path}: {message}")

    def training(
        self,
        role: str,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        val_accuracy: float | None,
    ) -> None:
        key = f"training:{role}"
        if key not in self._bars:
            self._bars[key] = self.progress.add_task(
                f"train {role}", total=epochs * batches, status=""
            )
        status = f"epoch {epoch + 1}/{epochs}"
        if val_accuracy is not None:
            status += f", val acc {val_accuracy:.1%}"
        self.progress.update(self._bars[key], completed=epoch * batches + batch, status=status)
