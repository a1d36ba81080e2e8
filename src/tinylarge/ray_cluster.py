"""Starting Ray, in one place, for every part that scales out on it: sweeps
(`tinylarge.sim.sweep`), shards of cells (`tinylarge.sim.ray_shards`) and federated rounds
(`tinylarge.integrate.colearning.local_training_ray`).

Ray is imported only when a run uses it (importing it costs seconds and memory).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping


def start_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    env_vars: Mapping[str, str] | None = None,
) -> None:
    """Join the Ray cluster at ``address`` or start a new local one; nothing to do when Ray is
    already initialised (inside a Ray task, or after an earlier start).

    Parameters
    ----------
    address : str, optional
        ``"auto"`` or ``HOST:PORT`` of a running cluster. None: a new local cluster, never one
        that ``ray start`` left behind on this machine. Callers that honour ``RAY_ADDRESS``
        pass ``os.environ.get("RAY_ADDRESS")``.
    num_cpus : int, optional
        CPUs of a new local cluster (default: Ray's count of this machine's); ignored when
        joining.
    env_vars : mapping of str to str, optional
        Environment variables of every worker (Ray's ``runtime_env``).

    Raises
    ------
    ConnectionError
        If the cluster at ``address`` cannot be joined; the message says what to check.

    Notes
    -----
    A local cluster has no dashboard and logs warnings only, and no process sends its worker
    logs to the driver's terminal (``log_to_driver=False``).
    """
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": dict(env_vars)} if env_vars else None
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, runtime_env=runtime_env)  # fmt: skip
        return
    try:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    except ConnectionError as error:
        raise ConnectionError(
            f"cannot join the Ray cluster at {address}: {error}. Is it running (`ray "
            "status`)? With token authentication (Ray's default for new clusters), set "
            "RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head)."
        ) from None
