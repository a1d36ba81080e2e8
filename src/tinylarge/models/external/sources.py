"""Where a user's model lives on disk: checked local paths and their content hashes.

tinylarge never downloads a model. Every external model names local files; these helpers turn
an option string into an existing path or fail with a message saying what was given, what was
expected and how to make it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

#: What a Hugging Face Hub id looks like (``bert-base-uncased``, ``org/name``): one or two
#: names of letters, digits, ``-``, ``_`` and ``.``, joined by one ``/``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

NEVER_DOWNLOADS = (
    "tinylarge never downloads models; save it with `model.save_pretrained(DIR)` and pass DIR"
)


def required_path(model: str, path: str) -> Path:
    """``path`` with ``~`` expanded; ``ValueError`` when the option was left empty."""
    if not path.strip():
        raise ValueError(f"{model}: the option path is required (options = {{path = '...'}})")
    return Path(path).expanduser()


def existing_file(model: str, path: str, what: str) -> Path:
    """The file ``path``; ``ValueError`` naming ``what`` was expected when there is none."""
    resolved = required_path(model, path)
    if resolved.is_dir():
        raise ValueError(f"{model}: path {path!r} is a directory; expected {what}")
    if not resolved.is_file():
        raise ValueError(f"{model}: path {path!r}: no such file; expected {what}")
    return resolved


def local_directory(model: str, path: str) -> Path:
    """The existing local directory ``path``; anything else (a file, a missing path, a string
    that looks like a Hugging Face Hub id) fails with ``ValueError`` before any library that
    could reach the network is imported."""
    resolved = required_path(model, path)
    if resolved.is_dir():
        return resolved
    if resolved.exists():
        raise ValueError(f"{model}: path {path!r} is a file, not a directory; {NEVER_DOWNLOADS}")
    looks_like_hub_id = bool(_HUB_ID.match(path)) and not path.startswith(".")
    kind = "looks like a Hugging Face Hub id, not" if looks_like_hub_id else "is not"
    raise ValueError(
        f"{model}: path {path!r} {kind} an existing local directory; {NEVER_DOWNLOADS}"
    )


def sha256_of_files(paths: Iterable[Path]) -> str:
    """SHA-256 (hex) over the names and contents of ``paths``, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
