"""Self-contained HTML: images embedded as base64 data URIs, inline CSS, no scripts or links."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.meta { color: #555; } .note { color: #555; font-size: 0.92em; }
ul.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.5em 0.5em 2em; }
section.lead { background: #f2f7fc; border: 1px solid #c9dcee; border-radius: 6px;
               padding: 0.2em 1.2em 0.6em; margin: 1em 0; }
section.lead h2 { margin: 0.4em 0 0.3em; border-bottom: none; }
section.lead table { background: #fff; }
section.lead th { vertical-align: bottom; }
section.lead td:first-child { white-space: nowrap; }
section.lead tbody tr:first-child { font-weight: 600; }
nav.contents ol { margin: 0.5em 0; padding-left: 0; list-style: none; display: flex;
                  flex-wrap: wrap; gap: 0.2em 1.4em; font-size: 0.95em; }
"""


@dataclass(frozen=True)
class Section:
    """One titled part of the report; ``body`` is trusted HTML built with the helpers below.

    A ``lead`` section opens the page in a framed block, above the table of contents: the
    answer a reader looks for first.
    """

    title: str
    body: str
    lead: bool = False


def escape(text: object) -> str:
    return html.escape(str(text))


def image(path: Path, caption: str) -> str:
    """An ``<img>`` with the PNG embedded, so the report opens from disk anywhere."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_BOLD = re.compile(r"[*][*](.+?)[*][*]")
_CODE = re.compile(r"`([^`]+)`")


def paragraph(text: str, css_class: str = "") -> str:
    """A paragraph of plain text (escaped); ``**words**`` are set in bold, `` `name` `` as code."""
    cls = f' class="{css_class}"' if css_class else ""
    body = _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", escape(text)))
    return f"<p{cls}>{body}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole HTML document: title, the lead sections, a table of contents, the rest."""
    first = [s for s in sections if s.lead]
    rest = [s for s in sections if not s.lead]
    leads = "".join(
        f'<section class="lead" id="lead{i}"><h2>{escape(s.title)}</h2>\n{s.body}\n</section>'
        for i, s in enumerate(first)
    )
    toc = "".join(f'<li><a href="#s{i}">{escape(s.title)}</a></li>' for i, s in enumerate(rest))
    parts = "".join(f'<h2 id="s{i}">{escape(s.title)}</h2>\n{s.body}\n' for i, s in enumerate(rest))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="meta">{escape(subtitle)}</p>{leads}'
        f'<nav class="contents"><ol>{toc}</ol></nav>{parts}</body></html>\n'
    )
