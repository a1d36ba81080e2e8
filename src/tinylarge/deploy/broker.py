"""A local Mosquitto broker as a child process, and broker addresses (``mqtt://HOST:PORT``).

Mosquitto is the reference MQTT broker (Eclipse; https://mosquitto.org). The generated config
follows what was measured on these machines:

- ``set_tcp_nodelay true``: without TCP_NODELAY on both sides a QoS 1 request/reply round trip
  takes 44-92 ms (Nagle's algorithm + delayed ACK) instead of about 0.5 ms;
- ``max_queued_messages``: the default (1000) silently drops QoS 1 messages for a slow or
  offline subscriber (mosquitto.conf(5));
- persistence on, with ``autosave_interval``: a SIGTERM saves ``mosquitto.db``; a SIGKILL loses
  what was not autosaved, so the application layer re-sends (at-least-once);
- started as root, Mosquitto drops to the ``mosquitto`` user, which then cannot write a data
  directory below a private (0700) one such as a test's temporary directory; as root the config
  says ``user root`` (a local child broker of the user's own process).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

#: What to tell a user whose machine has no Mosquitto.
INSTALL_HINT = (
    "Mosquitto is not installed (no 'mosquitto' on PATH). Install it with "
    "'apt-get install mosquitto' (Debian/Ubuntu), 'brew install mosquitto' (macOS) or see "
    "https://mosquitto.org/download/; or point --broker at a running MQTT broker"
)
DEFAULT_PORT = 1883


@dataclass(frozen=True)
class BrokerAddress:
    """Where an MQTT broker listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://HOST[:PORT]`` -> `BrokerAddress`; ``ValueError`` saying what is allowed."""
    parts = urlsplit(url)
    allowed = "expected mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883"
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"broker URL {url!r}: {allowed}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"broker URL {url!r} has parts MQTT does not use; {allowed}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"broker URL {url!r}: the port must be 1..65535; {allowed}") from None
    return BrokerAddress(parts.hostname, port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def mosquitto_config(port: int, data_dir: Path, *, host: str = "127.0.0.1") -> str:
    """The text of a mosquitto.conf for one local listener with persistence in ``data_dir``."""
    return "\n".join(
        [
            *(["user root"] if os.geteuid() == 0 else []),
            f"listener {port} {host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 1",  # seconds: what a SIGKILL of the broker can lose
            "set_tcp_nodelay true",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",  # no cap: the clients' own windows bound it
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


def wait_listening(address: BrokerAddress, timeout_s: float) -> None:
    """Return when ``address`` accepts TCP connections; ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((address.host, address.port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no MQTT broker accepted connections at {address.url} within {timeout_s} s"
                ) from None
            time.sleep(0.02)


class Broker:
    """A Mosquitto child process; use as a context manager or call `start` / `stop`.

    Parameters
    ----------
    data_dir : path
        Holds the generated ``mosquitto.conf``, the persistence database and ``mosquitto.log``.
    port : int, optional
        Loopback port (default: a free one).
    executable : str
        The broker program (default ``mosquitto`` on PATH).
    """

    def __init__(
        self, data_dir: str | Path, *, port: int | None = None, executable: str = "mosquitto"
    ) -> None:
        self.data_dir = Path(data_dir)
        self.address = BrokerAddress("127.0.0.1", port or free_port())
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> BrokerAddress:
        """Start the broker and wait until it listens; ``RuntimeError`` if it exits."""
        if self.running:
            return self.address
        program = shutil.which(self.executable)
        if program is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(mosquitto_config(self.address.port, self.data_dir.resolve()))
        log = (self.data_dir / "mosquitto.log").open("ab")
        self._process = subprocess.Popen([program, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with code {self._process.returncode} at start; "
                        f"its log: {self.data_dir / 'mosquitto.log'}"
                    )
                try:
                    wait_listening(self.address, 0.1)
                    return self.address
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (Mosquitto saves its database), SIGKILL if it does not exit in time."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (what was not autosaved is lost)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
