"""The edge server as the simulator models it: a batching server whose batch of b requests
takes ``setup_s + b x per_item_s`` (`EdgeServiceModel`), its queue (`edge_queue`), and the fit
of those two figures to measured batches (`fit_batch_service`), used both when the simulator
times its large model and when the running edge reports what it served."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tinylarge.net.batching import batch_queue, linear_batch_service
from tinylarge.net.draws import cell_runs

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
EdgeSites = Literal["shared", "per_cell"]


@dataclass(frozen=True)
class EdgeServiceModel:
    """The edge's large model as a batching server: a batch of b takes setup_s + b x per_item_s.

    ``source`` says where the figures come from (measured on this machine, or a profile).
    """

    setup_s: float
    per_item_s: float
    max_batch: int = 64
    max_wait_s: float | None = 0.002
    source: str = "profile"
    #: "shared": one server for every cell; "per_cell": one at each base station (MEC).
    sites: EdgeSites = "shared"


def fit_batch_service(sizes: npt.ArrayLike, service_s: npt.ArrayLike) -> tuple[float, float]:
    """Least-squares ``service_s = setup_s + size x per_item_s`` over measured batches.

    Both figures are kept >= 0: with one batch size only, all the time is ``per_item_s``;
    when noise hides the size effect (negative slope), the time is a constant per batch
    (``setup_s`` = the mean, ``per_item_s = 0``); when the line would start below 0, the fit
    goes through the origin instead.

    Parameters
    ----------
    sizes : array_like of int (>= 1), shape (n,)
        Requests in each measured batch; n >= 1.
    service_s : array_like of float, shape (n,)
        Each batch's service time, s.

    Returns
    -------
    setup_s, per_item_s : float
        The fitted figures of an `EdgeServiceModel`, s.
    """
    size = np.asarray(sizes)
    service = np.asarray(service_s, dtype=np.float64)
    if size.ndim != 1 or size.size == 0 or service.shape != size.shape or (size < 1).any():
        raise ValueError(
            "sizes and service_s must be 1-D of the same non-zero length, sizes >= 1; got "
            f"shapes {size.shape} and {service.shape}"
        )
    if np.unique(size).size < 2:
        return 0.0, float(np.mean(service / size))
    per_item, setup = np.polyfit(size.astype(np.float64), service, 1)
    if per_item < 0:
        return float(np.mean(service)), 0.0
    if setup < 0:
        return 0.0, float(np.sum(size * service) / np.sum(size**2))
    return float(setup), float(per_item)


def edge_queue(
    edge: EdgeServiceModel, at_edge_s: FloatArray, served: BoolArray, cell: npt.NDArray[np.integer]
) -> tuple[FloatArray, FloatArray]:
    """Wait in the edge's batching queue and departure from it of every served message, s
    (0 and NaN for the others): one queue for all cells, or one per cell (``edge.sites``)."""
    n = at_edge_s.size
    wait = np.zeros(n)
    done = np.full(n, np.nan)
    index = np.flatnonzero(served)
    if edge.sites == "per_cell":
        order, _, bounds = cell_runs(cell[index])
        queues = [index[order[lo:hi]] for lo, hi in itertools.pairwise(bounds.tolist())]
    else:
        queues = [index]
    service = linear_batch_service(edge.setup_s, edge.per_item_s)
    for members in queues:
        if not members.size:
            continue
        # Stable sort: at_edge is nearly sorted already, which timsort exploits.
        ordered = members[np.argsort(at_edge_s[members], kind="stable")]
        batches = batch_queue(
            at_edge_s[ordered],
            max_batch=edge.max_batch,
            batch_service_s=service,
            max_wait_s=edge.max_wait_s,
        )
        wait[ordered] = batches.wait_s
        done[ordered] = batches.departure_s
    return wait, done
