"""Fitted inference policies as JSON files, so that a deployment runs the run's own policy.

A policy's state is its constructor arguments plus what `fit` learnt (attributes ending in
``_``; sklearn's convention): numbers, strings, None and float64 arrays. JSON keeps floats
exactly (Python writes the shortest repr that reads back to the same double), so a loaded
policy decides bit for bit as the saved one. Only the policies a device can run from its own
logits are deployable (`DEPLOYABLE`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tinylarge.integrate.inference.baselines import Cascade, LargeOnly, TinyOnly
from tinylarge.integrate.inference.contract import Policy
from tinylarge.integrate.inference.router import Router

#: Policies a device decides from its tiny model's logits alone, by name.
DEPLOYABLE: dict[str, type[Policy]] = {
    cls.name: cls for cls in (TinyOnly, LargeOnly, Cascade, Router)
}
POLICY_FORMAT = "tinylarge-policy-1"


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"array": value.astype(np.float64).tolist(), "shape": list(value.shape)}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}  # inf thresholds (offload everything)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot save a policy attribute of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=np.float64).reshape(value["shape"])
    if isinstance(value, dict) and "float" in value:
        return float(value["float"])
    return value


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The JSON-ready state of a deployable policy."""
    if policy.name not in DEPLOYABLE or type(policy) is not DEPLOYABLE[policy.name]:
        raise ValueError(
            f"policy {policy.name!r} cannot run on a device from its own logits; deployable: "
            f"{', '.join(DEPLOYABLE)}"
        )
    state = {k: _encode(v) for k, v in vars(policy).items() if not k.startswith("_")}
    return {"format": POLICY_FORMAT, "policy": policy.name, "state": state}


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """The policy of `policy_to_dict`, without calling its constructor or `fit` again."""
    if data.get("format") != POLICY_FORMAT or data.get("policy") not in DEPLOYABLE:
        raise ValueError(
            f"not a {POLICY_FORMAT} document of a deployable policy ({', '.join(DEPLOYABLE)})"
        )
    cls = DEPLOYABLE[data["policy"]]
    policy = cls.__new__(cls)
    policy.__dict__.update({k: _decode(v) for k, v in data["state"].items()})
    return policy


def save_policy(policy: Policy, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(policy_to_dict(policy), indent=1))


def load_policy(path: str | Path) -> Policy:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable policy file ({error})") from None
    try:
        return policy_from_dict(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
