"""The text corpus: files split at blank lines, the held-out split, CPython's text and its
cache."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tinylarge.data import text_corpus
from tinylarge.data.text_corpus import (
    python_corpus_documents,
    split_at_blank_lines,
    split_documents,
    text_file_documents,
)


def test_files_split_at_blank_lines_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("first line\nsame doc  \n\n \t\nsecond doc\n\n\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("héllo wörld", encoding="utf-8")
    assert text_file_documents([a, str(b)]) == ["first line\nsame doc", "second doc", "héllo wörld"]
    assert split_at_blank_lines("\n\n") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"ok\n\xff\xfe", "is not UTF-8 (invalid byte at offset 3)"),
        (b"\n  \n", "holds no text"),
    ],
)
def test_bad_files_fail_clearly(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        text_file_documents([path])
    with pytest.raises(ValueError, match="at least one text file"):
        text_file_documents([])


def test_every_nth_document_is_held_out() -> None:
    documents = [f"d{i}" for i in range(10)]
    train, held = split_documents(documents, 3)
    assert held == ["d2", "d5", "d8"]
    assert train == ["d0", "d1", "d3", "d4", "d6", "d7", "d9"]
    with pytest.raises(ValueError, match="every must be >= 2"):
        split_documents(documents, 1)
    with pytest.raises(ValueError, match="2 document\\(s\\) are too few"):
        split_documents(documents[:2], 3)


def test_docstrings_skip_tests_and_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdlib = tmp_path / "lib"
    (stdlib / "test").mkdir(parents=True)
    (stdlib / "pkg").mkdir()
    (stdlib / "test" / "x.py").write_text('"""in a test dir"""', encoding="utf-8")
    (stdlib / "test_mod.py").write_text('"""a test file"""', encoding="utf-8")
    (stdlib / "broken.py").write_text("def (:", encoding="utf-8")
    (stdlib / "pkg" / "m.py").write_text(
        '"""Module doc."""\nclass C:\n    """Class doc."""\n    def f(self):\n'
        '        """  Same.\n\n        Indented."""\ndef g():\n    """Module doc."""\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(text_corpus.sysconfig, "get_paths", lambda: {"stdlib": str(stdlib)})
    documents = python_corpus_documents(tmp_path / "cache")
    from pydoc_data.topics import topics

    n_topics = sum(1 for v in topics.values() if v.strip())
    assert documents[0] == topics[sorted(topics)[0]].strip()
    assert documents[n_topics:] == ["Module doc.", "Class doc.", "Same.\n\nIndented."]
    cached = tmp_path / "cache" / f"python-corpus-{platform.python_version()}.json"
    assert json.loads(cached.read_text(encoding="utf-8")) == documents


def test_the_cache_is_read_back_and_a_damaged_one_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / f"python-corpus-{platform.python_version()}.json"
    cached.write_text(json.dumps(["from the cache"]), encoding="utf-8")
    assert python_corpus_documents(tmp_path) == ["from the cache"]
    cached.write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(text_corpus, "_build_python_corpus", lambda: ["rebuilt"])
    assert python_corpus_documents(tmp_path) == ["rebuilt"]
    assert json.loads(cached.read_text(encoding="utf-8")) == ["rebuilt"]
