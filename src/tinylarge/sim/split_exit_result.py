"""What the split/exit stage (`tinylarge.sim.split_exit_stages`) leaves for later stages.

Kept apart from the stage so that `tinylarge.sim.state.RunState` can hold it without importing
the stage (which imports the state).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylarge.models.split_exit import SplitExitModel
from tinylarge.models.training import TrainingReport


@dataclass(frozen=True)
class SplitExit:
    """The trained graft and what the device pays for each of its paths.

    Attributes
    ----------
    model : SplitExitModel
        The frozen large model with its bottleneck (encoder/decoder) and exit head.
    from_cache : bool
        Whether the graft was loaded from the model cache instead of trained.
    reports : dict of part -> TrainingReport
        Training of the ``exit`` head and of the ``bottleneck`` (empty when from the cache
        without a record).
    block_macs : int
        Device MACs of the large model's blocks before the cut, ``[0, split_at)``.
    exit_macs : int
        Device MACs of the exit path: the blocks before the cut plus the exit head.
    encoder_macs : int
        Device MACs of the bottleneck encoder on the cut's activation.
    code_bytes : int
        Bytes on air of the quantized code plus its header.
    """

    model: SplitExitModel
    from_cache: bool
    reports: dict[str, TrainingReport]
    block_macs: int
    exit_macs: int
    encoder_macs: int
    code_bytes: int

    @property
    def bottleneck_macs(self) -> int:
        """Device MACs of the bottleneck path alone (blocks before the cut + encoder)."""
        return self.block_macs + self.encoder_macs
