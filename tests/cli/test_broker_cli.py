"""`tinylarge fleet --enroll-only` issues the certificates, `tinylarge broker --run-dir` runs the
locked-down broker and says what it enforces, `tinylarge revoke` revokes a device and makes
that broker reload its CRL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tinylarge.cli.main import app
from tinylarge.deploy.broker import BrokerAddress, free_port
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.mqtt import diagnose_refusal


def _start_broker(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """`tinylarge broker ARGS` as a process; its output up to the line it prints last."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tinylarge.cli.main", "broker", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "revoke a device" in line or "lock it down" in line:
            return process, "".join(lines)
    process.kill()
    raise AssertionError("".join(lines))


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out


def test_enroll_only_issues_every_certificate_and_says_what_to_copy_where(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(app, ["fleet", str(tmp_path), "--enroll-only", "--devices", "3"])
    assert result.exit_code == 0, result.output
    pki = DeployLayout(tmp_path).pki
    for name in ("device-00000", "device-00001", "device-00002", "edge"):
        files = pki.files(name)
        assert files.cert.is_file() and files.key.stat().st_mode & 0o777 == 0o600, name
    text = "".join(result.output.split())  # whatever the console's wrapping
    assert "3deviceidentities" in text and "totheedge:" in text and "tothebroker:" in text
    assert str(pki.files("edge").key) in text and str(pki.ca_cert) in text


@pytest.mark.slow
def test_the_locked_down_broker_says_what_it_enforces_and_a_revoke_reloads_it(
    tmp_path: Path, mosquitto: str
) -> None:
    run_dir, data = tmp_path / "run", tmp_path / "broker"
    enrolled = CliRunner().invoke(app, ["fleet", str(run_dir), "--enroll-only", "--devices", "2"])
    assert enrolled.exit_code == 0, enrolled.output
    port = free_port()
    process, out = _start_broker(
        ["--run-dir", str(run_dir), "--data-dir", str(data), "--port", str(port)]
    )
    try:
        assert f"mqtts://127.0.0.1:{port}" in out and "It enforces" in out
        assert "TLS 1.3 only" in out and "client certificate" in out and "ACL" in out
        pid = int((data / "mosquitto.pid").read_text())
        assert b"mosquitto" in Path(f"/proc/{pid}/cmdline").read_bytes()
        address, layout = BrokerAddress("127.0.0.1", port, tls=True), DeployLayout(run_dir)
        assert diagnose_refusal(address, layout.tls_for("device-00000")) is None  # accepted
        revoked = CliRunner().invoke(
            app, ["revoke", str(run_dir), "device-00000", "--data-dir", str(data)]
        )
        assert revoked.exit_code == 0, revoked.output
        said = "".join(revoked.output.split())
        assert f"pid{pid}" in said and "reloaded" in said
        refusal = diagnose_refusal(address, layout.tls_for("device-00000"))
        assert refusal is not None and refusal.reason == "revoked"
        assert diagnose_refusal(address, layout.tls_for("device-00001")) is None
        refused = diagnose_refusal(address, None)
        assert refused is not None and refused.reason == "no_certificate"
    finally:
        _stop(process)
    assert not (data / "mosquitto.pid").exists()


@pytest.mark.slow
def test_without_a_run_directory_the_broker_says_it_is_open(tmp_path: Path, mosquitto: str) -> None:
    process, out = _start_broker(["--data-dir", str(tmp_path), "--port", str(free_port())])
    _stop(process)
    assert "An open broker" in out and "plaintext MQTT" in out and "--run-dir" in out


def test_revoke_without_a_running_broker_says_how_to_reload_yours(tmp_path: Path) -> None:
    DeployLayout(tmp_path).enroll(2)
    runner = CliRunner()
    result = runner.invoke(app, ["revoke", str(tmp_path), "device-00001",
                                 "--data-dir", str(tmp_path / "none")])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # whatever the console's wrapping
    assert "kill-HUP" in text and "crl.pem" in text
    assert DeployLayout(tmp_path).pki.revoked() == {"device-00001"}
    unknown = runner.invoke(app, ["revoke", str(tmp_path), "device-99999"])
    assert unknown.exit_code == 2 and "no certificate for 'device-99999'" in unknown.output


def test_enroll_only_with_a_tls_broker_url_issues_the_broker_certificate_for_its_host(
    tmp_path: Path,
) -> None:
    """The broker on another machine gets a certificate naming the host the clients dial."""
    from cryptography import x509

    result = CliRunner().invoke(
        app,
        ["fleet", str(tmp_path), "--enroll-only", "--devices", "1",
         "--broker", "mqtts://broker.example:8883"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    server = DeployLayout(tmp_path).pki.server_paths("broker.example")
    cert = x509.load_pem_x509_certificate(server.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker.example" in names.get_values_for_type(x509.DNSName)
    assert server.key.stat().st_mode & 0o007 == 0  # nobody but its owner (and the broker's group)


def test_broker_listening_on_every_interface_is_reached_at_its_certificate_name(
    tmp_path: Path,
) -> None:
    """``--host 0.0.0.0``: the config listens on every interface; clients on this machine reach
    it at 127.0.0.1 with TLS (the default name the certificate carries)."""
    assert CliRunner().invoke(app, ["fleet", str(tmp_path), "--enroll-only", "--devices", "1"])
    port, data = free_port(), tmp_path / "broker-data"
    process, out = _start_broker(["--run-dir", str(tmp_path), "--host", "0.0.0.0",
                                  "--port", str(port), "--data-dir", str(data)])  # fmt: skip
    try:
        assert f"listener {port} 0.0.0.0" in (data / "mosquitto.conf").read_text()
        assert f"0.0.0.0:{port}" in "".join(out.split())
        layout = DeployLayout(tmp_path)
        address = BrokerAddress("127.0.0.1", port, tls=True)
        assert diagnose_refusal(address, layout.tls_for("device-00000")) is None
    finally:
        _stop(process)
