"""Data tables shipped as package data: TOML files whose rows are validated pydantic models.

A table file holds one TOML table per row, named by the row's key::

    [stm32l4r5]
    part = "NUCLEO-L4R5ZI"
    clock_hz = 120e6
    ...

`load_table` reads such a file from a package (``importlib.resources``, so it works from a wheel
or a zip) and validates every row with the row model; `parse_table` does the same for text
already read. A bad row fails at once with the file, the row and the field in the message.
Rows keep the order of the file.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import TypeVar

from pydantic import BaseModel, ValidationError

RowT = TypeVar("RowT", bound=BaseModel)


class TableError(ValueError):
    """A data table that is not valid TOML or has a row its model rejects."""


def _problems(error: ValidationError) -> str:
    """``field = value: message`` for each error; ``(row): message`` for a whole-row check."""
    out = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"])
        if not field:
            where = "(row)"
        elif e["type"] == "missing":  # its input is the whole row; the field name says it all
            where = field
        else:
            where = f"{field} = {e['input']!r}"
        out.append(f"{where}: {e['msg']}")
    return "; ".join(out)


def parse_table(text: str, origin: str, row_model: type[RowT]) -> dict[str, RowT]:
    """Validate every row of a TOML table text as ``row_model``.

    Parameters
    ----------
    text : str
        TOML text: top-level tables, one per row.
    origin : str
        Where the text comes from (a file name), for error messages.
    row_model : type of pydantic.BaseModel
        The model of one row; its validation decides what a row may hold.

    Returns
    -------
    dict of str to row_model
        Rows by name, in file order.

    Raises
    ------
    TableError
        If the text is not TOML, a top-level entry is not a table, or a row is invalid; the
        message names ``origin``, the row and each offending field with its value.
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TableError(f"{origin}: not valid TOML: {error}") from None
    rows: dict[str, RowT] = {}
    for name, fields in table.items():
        if not isinstance(fields, dict):
            raise TableError(
                f"{origin}: {name!r} must be a table ([{name}] followed by its fields), "
                f"got a {type(fields).__name__}"
            )
        try:
            rows[name] = row_model.model_validate(fields)
        except ValidationError as error:
            raise TableError(
                f"{origin}: row [{name}] is not a valid {row_model.__name__}: {_problems(error)}"
            ) from None
    return rows


def load_table(package: str, file_name: str, row_model: type[RowT]) -> dict[str, RowT]:
    """Read the package data file ``file_name`` of ``package`` and validate it (`parse_table`).

    Parameters
    ----------
    package : str
        Dotted name of the package holding the file, e.g. ``"tinylarge.tiny"``.
    file_name : str
        The TOML file inside the package, e.g. ``"mcu_profiles.toml"``.
    row_model : type of pydantic.BaseModel
        The model of one row.

    Returns
    -------
    dict of str to row_model
        Rows by name, in file order.
    """
    text = resources.files(package).joinpath(file_name).read_text(encoding="utf-8")
    return parse_table(text, f"{package.replace('.', '/')}/{file_name}", row_model)
