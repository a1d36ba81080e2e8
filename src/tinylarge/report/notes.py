"""Parts of a run that were skipped or missed their target, as the report shows them.

A stage that cannot do a part on the run's models records it (`RunState.skip` / `warn`);
`metrics.json` carries it as ``<section>.<part>.skipped`` / ``.warning`` and in the top-level
``skipped`` / ``warnings`` maps. Sections use `ran` to leave skipped entries out of tables and
`notes` to say why they are missing.
"""

from __future__ import annotations

from typing import Any

from tinylarge.report.html import escape


def is_skipped(entry: Any) -> bool:
    """Whether a metrics entry stands for a part that did not run."""
    return isinstance(entry, dict) and "skipped" in entry


def ran(entries: dict[str, Any]) -> dict[str, Any]:
    """The entries of a metrics section that ran (no ``_``-prefixed extras, no skipped ones)."""
    return {k: v for k, v in entries.items() if not k.startswith("_") and not is_skipped(v)}


def notes(metrics: dict[str, Any], section: str | None = None) -> str:
    """An HTML list of the skipped parts and warnings of ``section`` (all with None)."""
    items = []
    for kind, label in (("skipped", "skipped"), ("warnings", "warning")):
        for path, reason in metrics.get(kind, {}).items():
            if section is None or path.split(".", 1)[0] == section:
                items.append(
                    f"<li><b>{label}</b> <code>{escape(path)}</code>: {escape(reason)}</li>"
                )
    if not items:
        return ""
    return f'<ul class="notes">{"".join(items)}</ul>'
