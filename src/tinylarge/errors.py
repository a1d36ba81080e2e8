"""Errors shared by every layer.

`CannotFitError` separates two kinds of failure. A bad scenario (an unknown key, an option out
of range) is the user's mistake and fails before any work. A legitimate scenario can still give
models that leave a component nothing to do: a router when the large model never fixes a
sample, a threshold that cannot reach its target, a co-learning scheme no device can join.
Components raise `CannotFitError` for the second kind; the main job catches it, leaves that
part out, says why (terminal, ``metrics.json`` ``<section>.<part>.skipped``, report) and runs
everything else.
"""

from __future__ import annotations


class CannotFitError(ValueError):
    """A component cannot do its job on the models or data it was given (not a config error).

    The message says what was missing, e.g. "the large model fixes 0 of 10000 validation
    samples". A `ValueError` subclass, so callers that caught the old errors still do.
    """
