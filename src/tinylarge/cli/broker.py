"""`tinylarge broker | revoke`: a local Mosquitto, open or locked down with a run directory's
certificates (`tinylarge.deploy.broker.BrokerSecurity`), saying what it enforces; and the
revocation of a device's certificate, which the broker that `tinylarge broker` runs re-reads at
once (SIGHUP: mosquitto.conf(5), ``crlfile``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from tinylarge.cli.common import console, errors_as_failures, fail

BrokerDataOption = Annotated[Path, typer.Option(help="Config, persistence database and log.")]
#: The file in a broker's data directory where `tinylarge broker` keeps Mosquitto's pid.
PID_FILE = "mosquitto.pid"


def broker(
    port: Annotated[
        int | None,
        typer.Option(help="Port (default 1883; 8883 with --run-dir).", min=1, max=65535),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (every "
            "interface: devices and an edge on other machines)."
        ),
    ] = "127.0.0.1",
    name: Annotated[
        str | None,
        typer.Option(
            help="With --run-dir: the host name or IP address the clients connect to, which the "
            "broker's certificate must carry (default: --host, or 127.0.0.1 for 0.0.0.0).",
            show_default=False,
        ),
    ] = None,
    data_dir: BrokerDataOption = Path("mosquitto-data"),
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Lock the broker down with this run directory's certificates (its deploy/pki): "
            "TLS only, a client certificate required, its CRL, a per-device topic ACL.",
            file_okay=False,
        ),
    ] = None,
    prefix: Annotated[
        list[str] | None,
        typer.Option(
            help="With --run-dir: a topic prefix the ACL covers (repeat it for more; default "
            "tinylarge and tinylarge/lm)."
        ),
    ] = None,
) -> None:
    """Start a local Mosquitto broker and keep it until Ctrl-C (or SIGTERM); print what it
    enforces. Without --run-dir it is an open broker (plaintext, anyone may do anything)."""
    from tinylarge.deploy.broker import Broker, enforcement_lines
    from tinylarge.deploy.layout import DeployLayout

    with errors_as_failures(FileNotFoundError, RuntimeError, TimeoutError, ValueError):
        security = None
        if run_dir is not None:
            layout = DeployLayout(run_dir)
            prefixes = tuple(prefix) if prefix else ("tinylarge", "tinylarge/lm")
            server_name = name or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
            security = layout.broker_security(prefixes=prefixes, host=server_name)
        default_port = 1883 if security is None else 8883
        running = Broker(data_dir, port=port or default_port, security=security, host=host)
        address = running.start()
    pid_file = data_dir / PID_FILE
    pid_file.write_text(f"{running.pid}\n")
    console.print(
        f"Mosquitto listening at [bold]{address.url}[/]"
        f"{'' if host == address.host else f' (on {host}:{address.port})'} (data in {data_dir}, "
        f"pid {running.pid}); Ctrl-C stops"
    )
    console.print("[bold]It enforces:[/]" if security else "[yellow]An open broker:[/]")
    for line in enforcement_lines(security):
        console.print(f"  - {line}", highlight=False)
    if security is None:
        console.print("  (lock it down with --run-dir RUN_DIR: the run's certificates)")
    else:
        revoke = f"tinylarge revoke {run_dir} DEVICE_ID --data-dir {data_dir}"
        console.print(f"  revoke a device: {revoke}", highlight=False)

    async def wait() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        running.stop()
        pid_file.unlink(missing_ok=True)
        console.print("Mosquitto stopped (database saved)")


def _managed_broker(data_dir: Path) -> int | None:
    """The pid of the Mosquitto that `tinylarge broker` runs with ``data_dir``, if it is
    running (its pid file names a live process whose command line reads ``mosquitto``)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        os.kill(pid, 0)
        if cmdline.parent.exists() and b"mosquitto" not in cmdline.read_bytes():
            return None  # the pid was reused by another program
    except OSError:
        return None
    return pid


def revoke(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory holding the CA (deploy/pki).", file_okay=False)
    ],
    device_id: Annotated[str, typer.Argument(help="The device (or 'edge') to revoke.")],
    data_dir: Annotated[
        Path, typer.Option(help="The data directory of the `tinylarge broker` to reload.")
    ] = Path("mosquitto-data"),
) -> None:
    """Revoke a device's certificate: rewrite the run's CRL, and reload the broker that
    `tinylarge broker` runs with --data-dir (others: reload yours, e.g. kill -HUP)."""
    from tinylarge.deploy.broker import RELOAD_LINE
    from tinylarge.deploy.layout import DeployLayout

    pki = DeployLayout(run_dir).pki
    with errors_as_failures(ValueError):
        pki.revoke(device_id)
    console.print(f"revoked {device_id}: {pki.crl} lists {len(pki.revoked())} certificate(s)")
    pid = _managed_broker(data_dir)
    if pid is None:
        console.print(
            f"no running `tinylarge broker` in {data_dir}: copy {pki.crl} to your broker's "
            "crlfile and reload it (kill -HUP <mosquitto pid>, or systemctl reload mosquitto); "
            "until then it still accepts the certificate"
        )
        return
    log = data_dir / "mosquitto.log"
    before = log.read_text(errors="replace").count(RELOAD_LINE) if log.is_file() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 5.0
    while log.read_text(errors="replace").count(RELOAD_LINE) <= before:
        if time.monotonic() > deadline:
            raise fail(f"the broker (pid {pid}) did not log a reload within 5 s; see {log}")
        time.sleep(0.02)
    console.print(
        f"the broker (pid {pid}) reloaded its CRL: {device_id} is refused from its next "
        "connection on; a connection open now stays open until it drops (restart the broker "
        "to end it)"
    )
