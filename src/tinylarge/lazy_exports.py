"""Lazy public names of a package (PEP 562), so that importing a light submodule of it (a
broker controller, an MCU table) does not load torch or ONNX Runtime."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each public name from its submodule
    on first use.

    Parameters
    ----------
    package : str
        The package's dotted name (its ``__name__``).
    exports : mapping of str to str
        Public name -> the submodule of ``package`` that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
