"""Metrics, PNG plots and the self-contained HTML report of a run."""

from tinylarge.report.metrics import collect
from tinylarge.report.writer import write

__all__ = ["collect", "write"]
