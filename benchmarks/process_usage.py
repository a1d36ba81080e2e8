"""Resource use of a deployment's processes (broker, edge, fleet), sampled from a thread.

Used by ``bench_deploy.py`` (``--transport``, ``--soak-minutes``, ``--storm``). The processes
are this process's descendants, told apart by their command line: ``mosquitto`` (the broker the
runner starts), ``tinylarge ... serve`` (the edge) and ``tinylarge ... fleet`` (the fleet; its
worker processes are counted with it). Figures per role: resident set size (MB, summed over the
role's processes), open file descriptors and CPU seconds (user + system) since the start.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

ROLES = ("broker", "edge", "fleet")


def _own_role(process: psutil.Process) -> str | None:
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if not cmdline:
        return None
    if os.path.basename(cmdline[0]) == "mosquitto":
        return "broker"
    if "serve" in cmdline or "edge" in cmdline:
        return "edge"
    if "fleet" in cmdline:
        return "fleet"
    return None


def role_of(process: psutil.Process) -> str | None:
    """``broker`` / ``edge`` / ``fleet`` for a deployment process or a worker it spawned
    (the fleet's multiprocessing pool), else None."""
    me = os.getpid()
    while process is not None and process.pid != me:
        role = _own_role(process)
        if role is not None:
            return role
        try:
            process = process.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    return None


@dataclass
class Sample:
    """One sample: seconds since the monitor started, and per role RSS (MB), fds, CPU s."""

    t_s: float
    rss_mb: dict[str, float]
    fds: dict[str, int]
    cpu_s: dict[str, float]


@dataclass
class ProcessMonitor:
    """Sample the deployment's processes every ``every_s`` seconds until `stop`.

    CPU seconds of a process that ended (an edge killed and restarted) are kept, so
    ``cpu_s`` stays cumulative over a role's processes.
    """

    every_s: float = 60.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cpu_by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)
    _start: float = 0.0

    def start(self) -> ProcessMonitor:
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self.samples

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def sample(self) -> Sample:
        """Take one sample now."""
        rss = dict.fromkeys(ROLES, 0.0)
        fds = dict.fromkeys(ROLES, 0)
        for process in psutil.Process().children(recursive=True):
            role = role_of(process)
            if role is None:
                continue
            try:
                with process.oneshot():
                    rss[role] += process.memory_info().rss / 2**20
                    fds[role] += process.num_fds()
                    times = process.cpu_times()
                    self._cpu_by_pid[process.pid] = (role, times.user + times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        cpu = dict.fromkeys(ROLES, 0.0)
        for role, seconds in self._cpu_by_pid.values():
            cpu[role] += seconds
        sample = Sample(time.monotonic() - self._start, rss, fds, cpu)
        self.samples.append(sample)
        return sample
