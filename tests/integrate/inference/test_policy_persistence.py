"""Saved fitted policies decide exactly as before; what a device cannot run is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.integrate.inference.baselines import Cascade, LargeOnly, Oracle, TinyOnly
from tinylarge.integrate.inference.contract import Policy, Trace
from tinylarge.integrate.inference.persistence import load_policy, policy_to_dict, save_policy
from tinylarge.integrate.inference.router import Router


def _trace(n: int, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    return Trace(
        tiny_logits=rng.normal(size=(n, 5)),
        large_logits=rng.normal(size=(n, 5)),
        y=rng.integers(0, 5, n),
    )


@pytest.mark.parametrize(
    "policy",
    [
        TinyOnly(tiny_macs=10),
        LargeOnly(frame_bytes=256),
        Cascade("entropy", target_offload=0.3, frame_bytes=256, tiny_macs=10),
        Cascade("margin", threshold=float("inf"), frame_bytes=256, tiny_macs=10),
        Router(tiny_macs=10, bytes_per_offload=256, target_offload=0.4),
        Router(tiny_macs=10, bytes_per_offload=256, target_offload=0.4, hidden_units=6, seed=3),
    ],
    ids=lambda p: p.name,
)
def test_a_saved_policy_decides_bit_for_bit_as_the_fitted_one(
    policy: Policy, tmp_path: Path
) -> None:
    fitted = policy.fit(_trace(400, 0))
    save_policy(fitted, tmp_path / "p.json")
    loaded = load_policy(tmp_path / "p.json")
    test = _trace(500, 1)
    rng = np.random.default_rng(0)
    a = fitted.decide(test, np.arange(500), rng)
    b = loaded.decide(test, np.arange(500), rng)
    for field in ("offload", "prediction", "bytes_up", "device_macs", "fallback_prediction"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert type(loaded) is type(fitted)


def test_policies_that_need_more_than_the_device_logits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'oracle' cannot run on a device from its own logits"):
        policy_to_dict(Oracle(frame_bytes=256, tiny_macs=1))
    (tmp_path / "bad.json").write_text('{"format": "tinylarge-policy-1", "policy": "oracle"}')
    with pytest.raises(ValueError, match=r"bad\.json: not a tinylarge-policy-1 document"):
        load_policy(tmp_path / "bad.json")
