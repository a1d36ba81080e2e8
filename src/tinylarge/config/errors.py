"""Turn pydantic validation errors into messages naming the key, the value and what is allowed."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


class ScenarioError(ValueError):
    """A scenario (TOML file, preset or override) is invalid; the message lists every problem."""


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Return the section model class found by following ``loc`` from ``root``, if any."""
    current: Any = root
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _path(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _describe_bounds(model: type[BaseModel] | None, key: str) -> str:
    """Return ' (allowed: >= a, <= b)' from a field's declared bounds, or ''."""
    if model is None or key not in model.model_fields:
        return ""
    bounds = []
    for meta in model.model_fields[key].metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{symbol} {value}")
    return f" (allowed: {', '.join(bounds)})" if bounds else ""


def format_validation_error(error: ValidationError, root: type[BaseModel], source: str) -> str:
    """Render every problem of ``error`` on its own line: key path, value, what is allowed."""
    lines = [f"invalid scenario in {source}:"]
    for item in error.errors():
        loc = [p for p in item["loc"] if isinstance(p, str | int)]
        value = item.get("input")
        if item["type"] == "extra_forbidden":
            parent = _model_at(root, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent else "(see the schema)"
            lines.append(f"  - {_path(loc)}: unknown key; allowed keys here: {allowed}")
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        bounds = _describe_bounds(_model_at(root, loc[:-1]), str(loc[-1])) if loc else ""
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  - {_path(loc)}{shown}: {message}{bounds}")
    return "\n".join(lines)
