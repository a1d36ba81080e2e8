"""Parts of a run that were skipped or missed their target, as the report shows them.

A stage that cannot do a part on the run's models records it (`RunState.skip` / `warn`);
`metrics.json` carries it as ``<section>.<part>.skipped`` / ``.warning`` and in the top-level
``skipped`` / ``warnings`` maps. Sections use `ran` to leave skipped entries out of tables and
`notes` to say why they are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinylarge.report.html import escape

#: Metrics sections in words, as the report's section titles name them.
SECTION_WORDS = {
    "models": "Models",
    "foundation": "Foundation model",
    "tiny": "TinyML",
    "network": "6G network",
    "policies": "Collaborative inference",
    "colearning": "Co-learning",
    "security": "Security",
    "deploy": "Deployment",
}


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


@dataclass(frozen=True)
class MissedPart:
    """A skipped part or a warning, in words for the report's summary.

    Attributes
    ----------
    kind_in_words : str
        ``"Skipped"`` or ``"Missed its target"``.
    where : str
        The part: its section in words, then the rest of its metrics path
        (``"Collaborative inference, router"``).
    reason : str
        Why, as the stage recorded it.
    path : str
        The metrics path (``"policies.router"``).
    """

    kind_in_words: str
    where: str
    reason: str
    path: str


def part_in_words(path: str) -> str:
    """A metrics path in words: ``policies.router`` -> ``Collaborative inference, router``."""
    section, _, rest = path.partition(".")
    words = SECTION_WORDS.get(section, section)
    return f"{words}, {rest.replace('.', ' / ')}" if rest else words


def missed_parts(metrics: Mapping[str, Any]) -> list[MissedPart]:
    """Every skipped part, then every warning, of ``metrics`` (the top-level ``skipped`` and
    ``warnings`` maps), in the order the run recorded them."""
    parts = []
    for kind, words in (("skipped", "Skipped"), ("warnings", "Missed its target")):
        for path, reason in metrics.get(kind, {}).items():
            parts.append(MissedPart(words, part_in_words(path), str(reason), path))
    return parts
