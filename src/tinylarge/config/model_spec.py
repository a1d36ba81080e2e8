"""A model of the zoo named in a scenario: registered name and builder options."""

from __future__ import annotations

from pydantic import Field

from tinylarge.config.base import Section

OptionValue = bool | int | float | str


class ModelSpec(Section):
    """A model of the zoo by registered name, with keyword options for its builder."""

    name: str = Field(min_length=1)
    options: dict[str, OptionValue] = Field(default_factory=dict)
