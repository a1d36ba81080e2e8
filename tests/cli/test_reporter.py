"""The terminal reporter: skipped parts and warnings are printed where the user sees them."""

from __future__ import annotations

from rich.console import Console

from tinylarge.cli.reporter import RichReporter


def test_skipped_parts_and_warnings_are_printed_with_their_reason() -> None:
    console = Console(record=True, width=200, color_system=None)
    with RichReporter(console) as reporter:
        reporter.stage_started("policies", "Compare the inference policies")
        reporter.stage_finished("policies", 1.5, "6 policies")
        reporter.part_skipped("policies.router", "the large model fixes 0 of 300 frames")
        reporter.part_warning("policies.cascade", "it offloads 0% of them")
    lines = console.export_text().splitlines()
    assert lines[0].startswith("✓ policies (1.5 s)")
    assert lines[1].strip() == "! skipped policies.router: the large model fixes 0 of 300 frames"
    assert lines[2].strip() == "! warning policies.cascade: it offloads 0% of them"
