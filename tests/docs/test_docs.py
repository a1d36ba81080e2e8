"""The documentation cannot name what does not exist, and its smoke-sized examples run.

Every ``tinylarge ...`` command shown in README.md and docs/**/*.md (in code blocks and in
inline code) must name an existing (sub)command and only options that command has, and its
``--help`` must work; every dotted ``tinylarge.<module>[.<name>]`` in inline code must import;
every ``python benchmarks/<script>.py`` must exist; the site must build with
``mkdocs build --strict``.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tinylarge.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
runner = CliRunner()

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"`([^`]+)`")
_SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class DocCommand:
    """One ``tinylarge`` command as written in a document."""

    where: str  # "file:line"
    argv: tuple[str, ...]  # the words after ``tinylarge``


class DocCommandError(ValueError):
    """A documented command names a subcommand or an option that does not exist."""


def split_markdown(text: str) -> tuple[list[tuple[int, str]], str]:
    """Fenced code lines (1-based line number, text) and the prose with code blocks blanked."""
    code: list[tuple[int, str]] = []
    prose: list[str] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            prose.append("")
        elif fence is not None and line.strip().startswith(fence):
            fence = None
            prose.append("")
        elif fence is not None:
            code.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    return code, "\n".join(prose)


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Shell lines with their backslash continuations joined, at the first line's number."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line.strip()
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined


def commands_in_shell(line: str) -> list[tuple[str, ...]]:
    """The ``tinylarge`` commands of one shell line (several when joined by ``&&``, ``;``...)."""
    if "tinylarge" not in line:
        return []
    words = shlex.split(line, comments=True)
    commands: list[tuple[str, ...]] = []
    segment: list[str] = []
    for word in [*words, "&&"]:
        if word in _SEPARATORS:
            if segment and segment[0] == "tinylarge":
                commands.append(tuple(segment[1:]))
            segment = []
        else:
            segment.append(word)
    return commands


def doc_commands(path: Path) -> list[DocCommand]:
    """Every ``tinylarge`` command of a Markdown file: code-block lines and inline code."""
    text = path.read_text(encoding="utf-8")
    code, prose = split_markdown(text)
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = [
        DocCommand(f"{name}:{number}", argv)
        for number, line in _join_continuations(code)
        for argv in commands_in_shell(line)
    ]
    for match in _INLINE_CODE.finditer(prose):
        span = " ".join(match.group(1).split())
        if span.startswith("tinylarge "):  # a bare `tinylarge` names the program
            number = prose.count("\n", 0, match.start()) + 1
            # Optional parts are written [--opt VALUE]: the brackets are not part of the words.
            words = shlex.split(span.replace("[", " ").replace("]", " "))
            found.append(DocCommand(f"{name}:{number}", tuple(words[1:])))
    return found


@functools.cache
def _root_command() -> Any:
    return typer.main.get_command(app)


def resolve(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The subcommand path of ``tinylarge <argv>``; raise `DocCommandError` for a subcommand
    or an option that does not exist."""
    command = _root_command()
    path: list[str] = []
    rest = list(argv)
    while getattr(command, "commands", None) is not None:  # a group: the next word picks
        shown = " ".join(["tinylarge", *path])
        if not rest or rest[0].startswith("-"):
            choices = sorted(command.commands)
            raise DocCommandError(f"'{shown}' needs a subcommand, one of {choices}")
        word = rest.pop(0)
        if word not in command.commands:
            raise DocCommandError(
                f"'{shown}' has no subcommand {word!r}; it has {sorted(command.commands)}"
            )
        path.append(word)
        command = command.commands[word]
    options = {"--help"} | {
        opt
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("-")
    }
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("-") and option != "-" and option not in options:
            raise DocCommandError(
                f"'tinylarge {' '.join(path)}' has no option {option!r}; it has {sorted(options)}"
            )
    return tuple(path)


def problems_in(path: Path) -> list[str]:
    """Every documented command of ``path`` that does not resolve, as 'where: why'."""
    problems = []
    for command in doc_commands(path):
        try:
            resolve(command.argv)
        except DocCommandError as error:
            problems.append(f"{command.where}: {error}")
    return problems


ALL_COMMANDS = [command for path in DOC_FILES for command in doc_commands(path)]


def test_the_docs_show_the_commands_we_expect_to_check() -> None:
    """The extraction finds commands in code blocks, after ``&&``, across continuations and in
    inline code (if it found nothing, every other check here would pass vacuously)."""
    shown = {command.argv for command in ALL_COMMANDS}
    assert ("run",) in shown  # README: pip install -e . && tinylarge run
    assert ("presets",) in shown and ("models",) in shown
    assert ("config", "show", "--preset", "smoke") in shown
    assert ("run", "--preset", "smoke") in shown
    assert any(argv[:2] == ("tiny", "export") for argv in shown)
    assert any(argv[:1] == ("fleet",) and "--processes" in argv for argv in shown)  # continued
    assert ("run", "--preset", "attacks") in shown  # inline code wrapped over two lines
    assert len({resolve(argv) for argv in shown}) >= 12


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[c.where for c in ALL_COMMANDS])
def test_every_documented_command_exists_and_has_help(command: DocCommand) -> None:
    path = resolve(command.argv)
    assert _help_exit_code(path) == 0, f"{command.where}: tinylarge {' '.join(path)} --help failed"


@functools.cache
def _help_exit_code(path: tuple[str, ...]) -> int:
    result = runner.invoke(app, [*path, "--help"])
    if result.exit_code == 0:
        assert "Usage" in result.output
    return result.exit_code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("frobnicate",), "no subcommand 'frobnicate'"),
        (("tiny", "exprot", "x.tlm"), "no subcommand 'exprot'"),
        (("tiny",), "needs a subcommand"),
        (("config", "--preset", "smoke"), "needs a subcommand"),
        (("run", "--presett", "smoke"), "no option '--presett'"),
        (("tiny", "run", "m.tlm", "--runtim=tflm"), "no option '--runtim'"),
    ],
)
def test_a_command_that_does_not_exist_is_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(DocCommandError, match=re.escape(message)):
        resolve(argv)


def test_a_document_naming_a_gone_command_fails(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(
        "Text with `tinylarge presets`.\n\n```bash\n"
        "tinylarge tiny inspect m.tlm --mcu nrf52840   # fine\n"
        "pip install -e . && tinylarge tiny exprot m.tlm \\\n    --format onnx\n"
        "```\n\nAnd `tinylarge run --preset\nsmoke --fast`.\n"
    )
    problems = problems_in(doc)
    assert len(problems) == 2, problems
    assert problems[0].startswith("page.md:5:") and "'exprot'" in problems[0]
    assert problems[1].startswith("page.md:9:") and "'--fast'" in problems[1]
    # The --help check alone would catch the first as well: typer refuses it.
    assert runner.invoke(app, ["tiny", "exprot", "--help"]).exit_code != 0


def test_dotted_names_in_the_docs_import() -> None:
    """`tinylarge.<module>[.<attribute>...]` in inline code names a module or object that exists."""
    missing = []
    for path in DOC_FILES:
        _, prose = split_markdown(path.read_text(encoding="utf-8"))
        for match in re.finditer(r"`(tinylarge(?:\.\w+)+)", prose):
            if not _importable(match.group(1)):
                missing.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert not missing, missing
    assert not _importable("tinylarge.integrate.no_such_module")


def _importable(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_benchmark_scripts_named_in_the_docs_exist() -> None:
    named = {
        match.group(1)
        for path in DOC_FILES
        for match in re.finditer(r"python (benchmarks/[\w/]+\.py)", path.read_text())
    }
    assert "benchmarks/bench_scale.py" in named
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []


def test_relative_links_of_the_readme_lead_to_files() -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    assert "docs/index.md" in links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_presets_models_and_config_show_run_as_documented() -> None:
    presets = runner.invoke(app, ["presets"])
    assert presets.exit_code == 0 and "smoke" in presets.output
    models = runner.invoke(app, ["models"])
    assert models.exit_code == 0 and "tiny_cnn" in models.output
    shown = runner.invoke(app, ["config", "show", "--preset", "smoke"])
    assert shown.exit_code == 0, shown.output
    assert tomllib.loads(shown.output)["name"] == "smoke"


@pytest.mark.slow
def test_run_preset_smoke_runs_as_documented(smoke_result: Any, tmp_path: Path) -> None:
    """``tinylarge run --preset smoke`` (written to a temporary --out) gives the numbers of the
    Python API's run of the same preset. ``smoke_result`` (shared with the sim and report
    tests) also warms the model cache, so this run does not train again."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--preset", "smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"]["name"] == "smoke"
    for role in ("large", "tiny"):
        expected = smoke_result.evaluations[role].accuracy
        assert metrics["models"][role]["accuracy"] == pytest.approx(expected)


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "mkdocstrings", "material"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[dev]'")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    api = (site / "api" / "tiny.html").read_text()
    assert "tinylarge.tiny.quantize_model" in api  # the reference came from the docstrings
