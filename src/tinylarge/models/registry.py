"""A registry of model builders by name, with validated keyword options.

A builder is a function ``builder(input_shape, num_classes, *, option=default, ...)`` returning a
`torch.nn.Module`. Its keyword-only parameters are the model's options; `build_model` checks the
names and types of user options against them before building, so a typo fails with a message
that lists what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from pydantic import ConfigDict, ValidationError, validate_call
from torch import nn

OptionValue = bool | int | float | str
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, a one-line description and its options with defaults."""

    name: str
    builder: Builder
    description: str

    @property
    def options(self) -> dict[str, object]:
        """Option names mapped to their defaults."""
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name=name, builder=builder, description=description)
        return builder

    return decorate


def model_names() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """Return the registry entry of ``name``; unknown names fail with the list of known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(model_names())}"
        ) from None


def check_options(name: str, options: Mapping[str, OptionValue]) -> None:
    """Raise ``ValueError`` if ``options`` has a key the model lacks (names the allowed ones)."""
    allowed = model_entry(name).options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listing = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise ValueError(f"model {name!r} has no option {', '.join(unknown)}; options: {listing}")


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    options: Mapping[str, OptionValue] | None = None,
    *,
    seed: int,
) -> nn.Module:
    """Build a registered model with deterministic initial weights.

    Parameters
    ----------
    name : str
        Registered model name (see `model_names`).
    input_shape : tuple of int
        Shape of one sample without the batch axis, e.g. ``(2, 128)`` or ``(1, 8, 8)``.
    num_classes : int
        Number of output logits.
    options : mapping, optional
        Keyword options of the builder; unknown names or wrong types raise ``ValueError``.
    seed : int
        Seeds the weight initialisation; global torch random state is left untouched.
    """
    options = dict(options or {})
    check_options(name, options)
    builder = validate_call(config=ConfigDict(strict=False))(model_entry(name).builder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model: nn.Module = builder(tuple(input_shape), num_classes, **options)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}"
                for e in error.errors()
            )
            raise ValueError(f"model {name!r}: invalid option: {problems}") from None
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
