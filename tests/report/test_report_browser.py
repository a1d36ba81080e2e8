"""The smoke run's report in a real browser (headless Chromium) at a laptop's window size:
the summary is what a reader sees first, its answer whole, without scrolling sideways."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tinylarge.report import write
from tinylarge.sim import RunResult

pytestmark = pytest.mark.system

#: A laptop's screen, in CSS pixels (width, height).
WINDOW = (1366, 768)
INSTALL_HINT = "Chromium is not installed; install it with: apt-get install -y chromium"
#: The summary block's background (``section.lead`` in `tinylarge.report.html`), RGB.
LEAD_BACKGROUND = (0xF2, 0xF7, 0xFC)

#: Measures the laid-out page and appends the numbers as JSON to the DOM, which
#: ``--dump-dom`` prints. Injected into a copy of the report only (the report has no scripts).
_PROBE = """<script>
window.addEventListener("load", () => {
  const box = (el) => el ? el.getBoundingClientRect().toJSON() : null;
  const lead = document.querySelector("section.lead");
  const tables = [...document.querySelectorAll("table")];
  const models = tables.filter((t) => [...t.querySelectorAll("th")]
    .some((th) => th.textContent === "architecture"));
  const out = {
    viewport: [window.innerWidth, window.innerHeight],
    scroll_width: document.documentElement.scrollWidth,
    lead: box(lead),
    lead_table: box(lead && lead.querySelector("table")),
    first_model_table: box(models[0]),
  };
  const pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of the Chromium program; skipped without it unless TINYLARGE_REQUIRE_CHROMIUM=1
    (CI: these tests must run)."""
    program = shutil.which("chromium")
    if program is None:
        if os.environ.get("TINYLARGE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return program


@pytest.fixture(scope="module")
def report(smoke_result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(smoke_result, tmp_path_factory.mktemp("run"))


def _run_chromium(program: str, profile: Path, *args: str) -> str:
    """Headless Chromium at `WINDOW`, isolated from the network and the user's profile."""
    command = [
        program,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_screenshot_opens_on_the_summary(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", report.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (WINDOW[1], WINDOW[0], 3)
    ink = (pixels < 200).any(axis=2)  # text, rules and table borders
    assert ink.mean() > 0.01, "the first screen is blank"
    # the summary's tinted block fills a good part of the first screen, from near the top
    lead = (pixels == LEAD_BACKGROUND).all(axis=2)
    assert lead.mean() > 0.15, f"the summary block covers {lead.mean():.0%} of the first screen"
    rows = np.flatnonzero(lead.any(axis=1))
    assert rows[0] < 0.25 * WINDOW[1], f"the summary block starts {rows[0]} px down"
    # and there is text inside it (the headline and the table), not an empty box
    top, bottom = rows[0], rows[-1]
    assert ink[top:bottom].mean() > 0.02


def test_the_summary_is_laid_out_whole_in_the_first_screen(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", _PROBE + "</body>"), "utf-8")
    dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom)
    assert found, "the page did not finish loading"
    layout: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"'))
    width, height = layout["viewport"]
    lead, table, models = layout["lead"], layout["lead_table"], layout["first_model_table"]
    assert lead is not None and table is not None and models is not None, layout
    # the answer (headline and table) is whole in the first screen of the window, with no
    # sideways scrolling; a long list of skipped parts may run on below
    assert 0 <= lead["top"] < 0.25 * height, (lead, height)
    assert table["bottom"] <= height, (table, height)
    assert layout["scroll_width"] <= width, layout
    assert lead["left"] <= table["left"] and table["right"] <= lead["right"], (lead, table)
    # per-model detail comes below it
    assert models["top"] > lead["bottom"]
