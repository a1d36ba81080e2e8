"""Attacks by malicious federated clients (`tinylarge.integrate.colearning.fedavg.ClientAttack`).

- ``sign_flip``: send ``-scale x`` the honest update.
- ``scaling``: send ``scale x`` the honest update (model replacement, Bagdasaryan et al. 2020).
- ``gaussian``: send Gaussian noise of std ``scale`` per coordinate instead of an update.
- ``alie``: "a little is enough" (Baruch, Baruch & Goldberg, NeurIPS 2019): every attacker sends
  ``mean - z * std`` of the honest updates per coordinate, with
  ``z = Phi^-1((n - s) / n)``, ``s = floor(n / 2 + 1) - f`` for ``n`` clients of which ``f``
  are malicious; small enough to pass robust rules, coordinated to pull them.
- ``label_flip``: train on labels ``C - 1 - y`` and send the resulting update honestly.

Only floating-point tensors are attacked; integer buffers (step counters) pass unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm
from torch import Tensor

State = dict[str, Tensor]
ATTACKS = ("sign_flip", "scaling", "gaussian", "alie", "label_flip")


def _replace(delta: State, malicious: Tensor, rows: dict[str, Tensor]) -> State:
    out = {}
    for key, value in delta.items():
        if key in rows:
            value = value.clone()
            value[malicious] = rows[key].to(value.dtype)
        out[key] = value
    return out


def alie_z(n_clients: int, n_malicious: int) -> float:
    """ALIE's ``z`` for ``n`` clients of which ``f`` are malicious (Baruch et al. 2019, eq. 3)."""
    s = n_clients // 2 + 1 - n_malicious
    return float(norm.ppf((n_clients - s) / n_clients))


@dataclass(frozen=True)
class Attack:
    """One of `ATTACKS` with its strength ``scale`` (sign_flip / scaling factor, gaussian std)."""

    name: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise ValueError(f"unknown attack {self.name!r}; known: {', '.join(ATTACKS)}")
        if not self.scale > 0:
            raise ValueError(f"attack scale must be > 0, got {self.scale}")

    def poison_labels(self, y: Tensor, num_classes: int) -> Tensor:
        return num_classes - 1 - y if self.name == "label_flip" else y

    def poison_updates(self, delta: State, malicious: Tensor, rng: np.random.Generator) -> State:
        floats = {k: v for k, v in delta.items() if v.dtype.is_floating_point}
        f = int(malicious.sum())
        if self.name == "label_flip" or f == 0:
            return delta
        if self.name in ("sign_flip", "scaling"):
            factor = -self.scale if self.name == "sign_flip" else self.scale
            return _replace(delta, malicious, {k: factor * v[malicious] for k, v in floats.items()})
        if self.name == "gaussian":
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            rows = {
                k: self.scale * torch.randn((f, *v.shape[1:]), generator=gen, dtype=v.dtype)
                for k, v in floats.items()
            }
            return _replace(delta, malicious, rows)
        honest = ~malicious
        n = int(malicious.numel())
        z = alie_z(n, f)
        rows = {}
        for k, v in floats.items():
            ref = v[honest] if bool(honest.any()) else v
            mean, std = ref.mean(dim=0), ref.std(dim=0, unbiased=False)
            rows[k] = (mean - z * std).expand(f, *v.shape[1:])
        return _replace(delta, malicious, rows)
