"""C literals for generated code: integer arrays, float32 constants, safe comments."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt


def c_int(value: int) -> str:
    """An int32 value as a C literal (``INT32_MIN`` written so that it stays an int)."""
    return "(-2147483647 - 1)" if value == -(2**31) else str(value)


def c_array(ctype: str, name: str, values: npt.ArrayLike, per_line: int = 16) -> str:
    """A ``static const`` C array definition of integer ``values`` (flattened, C order)."""
    flat = np.asarray(values).reshape(-1)
    items = [c_int(int(v)) for v in flat]
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body},\n}};"


def c_float(value: float) -> str:
    """A float32 value as a C ``float`` literal that reads back exactly."""
    return f"{float(np.float32(value))!r}f"


def c_comment(text: str) -> str:
    """``text`` made safe inside a C block comment (no ``*/``, no trigraphs, one line)."""
    return re.sub(r"[^A-Za-z0-9_.,:()\[\] =+>-]", "?", text)


def c_struct(ctype: str, name: str, fields: dict[str, int]) -> list[str]:
    """A ``static const`` struct definition with designated initializers, as lines."""
    body = [f"    .{key} = {c_int(value)}," for key, value in fields.items()]
    return [f"static const {ctype} {name} = {{", *body, "};"]
