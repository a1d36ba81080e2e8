"""A cache of trained models keyed by a hash of everything that determines them.

Entries live under ``$TINYLARGE_CACHE_DIR`` (else ``$XDG_CACHE_HOME/tinylarge``, else
``~/.cache/tinylarge``) in ``models/<key>/``. An entry is written in a temporary folder and
renamed into place in one step, so an interrupted run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from tinylarge.models.persistence import ModelManifest, load_model, save_model

_STALE_TMP_S = 24 * 3600.0  # temporary folders older than this are leftovers of killed runs


def default_cache_dir() -> Path:
    """The user cache directory for tinylarge (see module docstring)."""
    if env := os.environ.get("TINYLARGE_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tinylarge"


def cache_key(determinants: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 24 chars) of the canonical JSON of ``determinants``."""
    text = json.dumps(determinants, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class ModelCache:
    """Trained models on disk by key.

    Parameters
    ----------
    root : path, optional
        Cache directory (default: `default_cache_dir`).
    enabled : bool
        When False, `get` always misses (forces retraining); `put` still refreshes the entry.
    """

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def entry_dir(self, key: str) -> Path:
        return self.models_dir / key

    def get(
        self, key: str, build: Callable[[ModelManifest], nn.Module] | None = None
    ) -> tuple[nn.Module, dict[str, Any]] | None:
        """Return ``(model, manifest document)`` for ``key``, or None when absent or disabled.

        A damaged entry (files missing or not matching their hash) is treated as absent.
        ``build`` makes the empty architecture (see `load_model`).
        """
        if not self.enabled:
            return None
        entry = self.entry_dir(key)
        if not entry.is_dir():
            return None
        try:
            return load_model(entry / "model", build)
        except ValueError:
            return None

    def put(
        self,
        key: str,
        model: nn.Module,
        manifest: ModelManifest,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Store ``model`` under ``key`` atomically, replacing an older entry; return its folder."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.models_dir))
        try:
            save_model(model, tmp / "model", manifest, extra)
            final = self.entry_dir(key)
            if final.exists():
                old = final.with_name(f".old-{key}-{os.getpid()}-{time.monotonic_ns()}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def _remove_stale_tmp(self) -> None:
        now = time.time()
        for path in self.models_dir.glob(".tmp-*"):
            try:
                if now - path.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue
