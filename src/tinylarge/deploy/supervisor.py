"""The child processes of a deployment on one machine: the edge server (``tinylarge serve``)
and the fleet (``tinylarge fleet``), started, watched and stopped.

Each child runs the `tinylarge` command itself (`python_cli`), so a deployment on one machine
is exactly the commands a user runs on separate machines. The edge is watched from a thread:
an exit nobody asked for (SIGKILL by the kernel's OOM killer, a crash) is recorded as an
`EdgeExit`, with its signal or exit code and when, and the edge is not restarted; the devices
answer themselves meanwhile, so the run goes on and its records stay complete.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinylarge.deploy.files import ANSWERED_FILE, READY_FILE, STATS_FILE

#: How often a waiting supervisor looks at its children, s.
POLL_S = 0.2


def python_cli(
    command: str, run_dir: Path, options: dict[str, object], flags: list[str]
) -> list[str]:
    """``python -m tinylarge.cli.main COMMAND RUN_DIR --key value ... FLAGS`` (this Python)."""
    args = [f for key, value in options.items() for f in (f"--{key}", str(value))]
    return [sys.executable, "-m", "tinylarge.cli.main", command, str(run_dir), *args, *flags]


@dataclass(frozen=True)
class EdgeExit:
    """An edge server process that ended without being asked to.

    Attributes
    ----------
    returncode : int
        `subprocess.Popen.returncode`: negative for a signal (-9: SIGKILL), else the exit code.
    started_unix, ended_unix : float
        When the process was started and when its end was seen (`time.time`, s).
    """

    returncode: int
    started_unix: float
    ended_unix: float

    @property
    def signal(self) -> str | None:
        """The signal's name (``"SIGKILL"``) if a signal ended it, else None."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    @property
    def exit_code(self) -> int | None:
        """The exit code if it exited by itself, else None."""
        return self.returncode if self.returncode >= 0 else None

    def metrics(self, schedule_start_unix: float) -> dict[str, Any]:
        """``deploy.edge_exit``: ``signal`` or ``exit_code``, ``at_s`` on the schedule's clock
        (s from the fleet's first request's instant; negative: before the schedule started,
        while the devices were handshaking; None: the schedule never started) and
        ``uptime_s`` (how long the process had run)."""
        at_s = self.ended_unix - schedule_start_unix
        return {
            "signal": self.signal,
            "exit_code": self.exit_code,
            "at_s": at_s if at_s == at_s else None,  # NaN: no schedule
            "uptime_s": self.ended_unix - self.started_unix,
        }


class EdgeProcess:
    """The ``tinylarge serve`` child process: start (waiting until it is ready), kill, stop;
    an exit nobody asked for lands in `exits`.

    Parameters
    ----------
    command : list of str
        Its argv (`python_cli`).
    state_dir : Path
        The edge's state directory (`tinylarge.deploy.layout.DeployLayout.edge_state`): its
        ready file, and the counters it writes on a clean exit (removed at each start, so no
        stale counters of an earlier process are ever read).
    log : Path
        Its output (appended).
    """

    def __init__(self, command: list[str], state_dir: Path, log: Path) -> None:
        self.command, self.state_dir, self.log = command, state_dir, log
        self.ready = state_dir / READY_FILE
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: ends of the edge nobody asked for (`kill` and `stop` are asked for)
        self.exits: list[EdgeExit] = []
        self._asked: set[int] = set()  # pids
        self._watchers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        """Start it and wait for its ready file; ``RuntimeError`` with its log if it fails."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in (READY_FILE, STATS_FILE, ANSWERED_FILE):
            (self.state_dir / name).unlink(missing_ok=True)
        with self.log.open("ab") as log:
            process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        self.process, started = process, time.time()
        self.starts += 1
        watcher = threading.Thread(
            target=self._watch, args=(process, started), name="edge-watch", daemon=True
        )
        watcher.start()
        self._watchers.append(watcher)
        deadline = time.monotonic() + timeout_s
        while not self.ready.is_file():
            if process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"the edge server exited with code {process.returncode}; its log:\n{tail}"
                )
            if time.monotonic() > deadline:
                self._signal(process, signal.SIGKILL)
                raise RuntimeError(f"the edge server was not ready within {timeout_s:g} s "
                                   f"(log: {self.log})")  # fmt: skip
            time.sleep(0.05)

    def _watch(self, process: subprocess.Popen[bytes], started_unix: float) -> None:
        process.wait()
        if process.pid not in self._asked:
            self.exits.append(EdgeExit(int(process.returncode), started_unix, time.time()))

    def _signal(self, process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        self._asked.add(process.pid)
        if process.poll() is None:
            process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no counters written (an exit asked for)."""
        if self.process is not None:
            self._signal(self.process, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (it writes its counters), SIGKILL if it does not exit in time; then its
        watchers are done."""
        if self.process is not None and self.process.poll() is None:
            self._signal(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        for watcher in self._watchers:
            watcher.join(5.0)

    @property
    def died(self) -> EdgeExit | None:
        """The last end nobody asked for, if the edge is not running now (it died for good)."""
        running = self.process is not None and self.process.poll() is None
        return None if running or not self.exits else self.exits[-1]


class FleetProcess:
    """The ``tinylarge fleet`` child process: run it to its end, reporting progress."""

    def __init__(self, command: list[str], log: Path, started_file: Path) -> None:
        self.command, self.log, self.started_file = command, log, started_file
        self.process: subprocess.Popen[bytes] | None = None

    def run(
        self,
        duration_s: float,
        on_tick: Callable[[float], None],
        on_schedule_start: Callable[[float], None],
    ) -> int:
        """Start it and wait for its end; its exit code. ``on_tick(elapsed_s)`` every
        `POLL_S`; ``on_schedule_start(unix_s)`` once, when its schedule starts (connecting
        and attaching the devices comes before)."""
        self.started_file.unlink(missing_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
            begun, announced = time.monotonic(), False
            while self.process.poll() is None:
                if not announced and self.started_file.is_file():
                    text = self.started_file.read_text().strip()
                    if text:
                        on_schedule_start(float(text))
                        announced = True
                on_tick(min(time.monotonic() - begun, duration_s))
                time.sleep(POLL_S)
        return int(self.process.returncode)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Interrupted: SIGTERM, then wait (its devices disconnect first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
