"""Built-in tasks (radio modulation frames, sklearn digits), the user ``.npz`` loader, and
splitting samples across devices (IID, Dirichlet label skew, by SNR).

Everything downstream codes against `Task` (arrays plus per-sample metadata) and `Partition`
(CSR arrays of sample indices per device).
"""

from tinylarge.data.digits import make_digits_task
from tinylarge.data.npz import load_npz_task
from tinylarge.data.partition import (
    Partition,
    partition_by_snr,
    partition_dirichlet,
    partition_iid,
)
from tinylarge.data.radio import generate_radio_frames
from tinylarge.data.radio_params import RADIO_CLASSES
from tinylarge.data.radio_task import make_radio_task
from tinylarge.data.task import Task

__all__ = [
    "RADIO_CLASSES",
    "Partition",
    "Task",
    "generate_radio_frames",
    "load_npz_task",
    "make_digits_task",
    "make_radio_task",
    "partition_by_snr",
    "partition_dirichlet",
    "partition_iid",
]
