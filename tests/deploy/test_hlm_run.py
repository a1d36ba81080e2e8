"""`run_hybrid_lm`: broker, edge and fleet as separate processes on two tiny saved checkpoints;
``metrics.json`` with every scheme's figures, and with the link emulated the simulator's
prediction beside the measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tinylarge.config import Scenario
from tinylarge.deploy.clock import MAX_LEAD_S
from tinylarge.deploy.hlm_records import TokenRecords
from tinylarge.deploy.hlm_run import SPEC_FILE, run_hybrid_lm
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT
from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import save_lm_checkpoint
from tinylarge.models.text.tokenizer import train_bpe
from tinylarge.secure.transport import publish_bytes

KEYS = ("tokens_per_s", "p50_token_latency_s", "p99_token_latency_s", "uplink_fraction",
        "bytes_up_per_token", "bytes_down_per_token", "lost", "timed_out")  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random toy draft and target sharing a small BPE vocabulary."""
    docs = ["The edge verifies the draft token of every device. " * 4,
            "A small model drafts; a large one checks. " * 4] * 8  # fmt: skip
    tokenizer = train_bpe(docs, vocab_size=300)
    root = tmp_path_factory.mktemp("lm")
    for role, seed in (("draft", 0), ("target", 1)):
        torch.manual_seed(seed)
        model = CausalTransformer(lm_architecture("toy", tokenizer.vocab_size))
        save_lm_checkpoint(root / role, model, tokenizer, {"steps": 0})
    return root / "draft", root / "target"


def _scenario(draft: Path, target: Path) -> Scenario:
    return Scenario.model_validate(
        {"name": "hlm-deploy", "task": {"name": "text"},
         "hybrid_lm": {"draft": str(draft), "target": str(target),
                       "schemes": ["slm", "llm", "u_hlm"]}}
    )  # fmt: skip


def test_every_scheme_is_measured_over_the_emulated_link_beside_the_simulator(
    checkpoints: tuple[Path, Path], tmp_path: Path, mosquitto: str
) -> None:
    result = run_hybrid_lm(
        _scenario(*checkpoints), run_dir=tmp_path, devices=2, tokens_per_device=12,
        thresholds={"u_hlm": 0.3}, prompts=[[5, 6, 7], [8, 9]], emulate_link=True,
    )  # fmt: skip
    written = json.loads(result.metrics_path.read_text())
    assert written == result.metrics
    figures = written["hybrid_lm_deploy"]
    assert set(figures) == {"slm", "llm", "u_hlm"}
    for name, row in figures.items():
        assert all(row[k] is not None for k in KEYS), name
        assert row["lost"] == 0 and row["tokens"] == 24
        records = result.records[name]
        assert set(np.unique(records.route)) <= {ON_DEVICE, BY_EDGE, TIMED_OUT}
        assert row["timed_out"] == int((records.route == TIMED_OUT).sum())
    assert figures["slm"]["uplink_fraction"] == 0.0 and figures["llm"]["uplink_fraction"] == 1.0
    assert figures["slm"]["bytes_up_per_token"] == 0.0
    deploy = written["deploy"]
    assert deploy["edge_exit"] is None and deploy["edge"]["rejected"] == {}
    # the run's own broker was locked down (the default transport), and refused nobody
    assert deploy["transport"] == "mqtt-tls" and deploy["broker"].startswith("mqtts://")
    assert deploy["broker_refused"] == {"no_certificate": 0, "revoked": None, "acl_denied": 0}
    assert deploy["broker_refused_sources"]["adversary"] is None
    assert deploy["edge"]["replies"] == int(sum(r.attempts.sum() for r in result.records.values()))
    twin = deploy["sim_vs_real"]
    assert set(twin) == {"slm", "llm", "u_hlm"}
    for name, row in twin.items():
        assert {"tokens_per_s", "p50_token_latency_s", "p99_token_latency_s"} <= set(row)
        assert row["tokens_per_s"]["sim"] > 0 and row["tokens_per_s"]["real"] > 0, name
        # the same uploads, up to the few outages each draws on its own
        up = row["uplink_fraction"]
        assert abs(up["sim"] - up["real"]) <= 0.1, name
    assert twin["slm"]["uplink_fraction"] == {"sim": 0.0, "real": 0.0, "ratio": None}
    # the device's drafting is charged at the MCU's time, in the simulator and for real (the
    # precise timer may wake a sleeper up to MAX_LEAD_S early)
    slm = twin["slm"]["p50_token_latency_s"]
    assert slm["real"] >= slm["sim"] - MAX_LEAD_S
    _check_transport(deploy, result.records)
    _check_transport_bytes(deploy, result.records, tmp_path)


def _check_transport(deploy: dict[str, Any], records: dict[str, TokenRecords]) -> None:
    """The transport is measured from the tokens the edge answered on their only request,
    and the prediction with it is the radio alone's plus that transport."""
    split, transport = deploy["round_trip_split"], deploy["transport_s"]
    assert transport == split["transport_s"]
    timed = sum(int((r.request_id >= 0).sum()) for r in records.values())
    assert 0 < split["matched"] <= timed
    assert split["by_scheme"]["slm"]["matched"] == 0
    assert 0 < transport["p50"] < split["round_trip_s"]["p50"]
    twin = deploy["sim_vs_real"]
    llm = split["by_scheme"]["llm"]["transport_s"]["p50"]
    assert twin["llm"]["transport_s"] == pytest.approx(llm)
    assert twin["slm"]["transport_s"] == pytest.approx(transport["p50"])  # has none of its own
    with_t = twin["llm"]["p50_token_latency_s"]["sim"]
    alone = twin["llm"]["without_transport"]["p50_token_latency_s"]["sim"]
    # every LLM-only token crosses the backhaul both ways: the median moves by the transport
    # (up to how the shifted requests meet in the edge's batches)
    assert with_t - alone == pytest.approx(llm, abs=0.5 * llm + 1e-3)
    radio_only = twin["llm"]["without_transport"]["p50_token_latency_s"]
    assert radio_only["real"] == twin["llm"]["p50_token_latency_s"]["real"]
    assert twin["slm"]["without_transport"] == {
        k: v for k, v in twin["slm"].items() if k not in ("transport_s", "without_transport")
    }


def _check_transport_bytes(
    deploy: dict[str, Any], records: dict[str, TokenRecords], run_dir: Path
) -> None:
    """Every message's bytes on the TCP stream: its MQTT 5 PUBLISH on this run's own topics
    (not the default prefix) in one TLS 1.3 record, 22 bytes more (5-byte header, content
    type, 16-byte tag: RFC 8446 section 5.2); the simulator charges the same per token."""
    prefix = json.loads((run_dir / SPEC_FILE).read_text())["prefix"]
    ids = [identity.device_id for identity in DeployLayout(run_dir).enroll(2)]
    for name, r in records.items():
        np.testing.assert_array_equal(r.transport_bytes_up, r.mqtt_bytes_up + 22 * r.attempts)
        extra = r.transport_bytes_down - r.mqtt_bytes_down  # 22 per reply received
        assert ((extra % 22 == 0) & ((extra > 0) == (r.bytes_down > 0))).all(), name
        once = r.attempts == 1  # one request, one reply: framed as computed here
        for way, sealed, mqtt in (("up", r.bytes_up, r.mqtt_bytes_up),
                                  ("down", r.bytes_down, r.mqtt_bytes_down)):  # fmt: skip
            topic = np.array([[len(f"{prefix}/lm/{way}/{d}".encode())] for d in ids])
            framed = publish_bytes(np.broadcast_to(topic, sealed.shape), sealed, qos=1)
            np.testing.assert_array_equal(mqtt[once & (sealed > 0)], framed[once & (sealed > 0)])
        row = deploy["sim_vs_real"][name]
        up, down = row["transport_bytes_up_per_token"], row["transport_bytes_down_per_token"]
        assert up["real"] == r.transport_bytes_up.sum() / r.route.size, name
        assert down["real"] == r.transport_bytes_down.sum() / r.route.size, name
        # the twin sends one request per token and gets one reply, over the link plan's
        # outages: when the running system did the same (as here, unless the loaded machine
        # delays a reply past the retry timer) the bytes agree exactly; a retry adds bytes
        if r.attempts.max() <= 1 and not (r.route == TIMED_OUT).any():
            assert up["sim"] == up["real"] and down["sim"] == down["real"], (name, up, down)
        else:
            assert up["real"] > up["sim"], (name, up)
    assert deploy["sim_vs_real"]["llm"]["transport_bytes_up_per_token"]["real"] > 0


def test_a_scenario_that_is_not_text_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"task\.name = 'text'"):
        run_hybrid_lm(Scenario(), run_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_or_repeated_schemes_are_refused(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="distinct names"):
        run_hybrid_lm(_scenario(*checkpoints), run_dir=tmp_path, schemes=["hlm", "hlm"])


def test_tinylarge_deploy_on_a_text_scenario_deploys_the_hybrid_model(
    checkpoints: tuple[Path, Path], tmp_path: Path, mosquitto: str
) -> None:
    words = ["the", "edge", "verifies", "a", "draft", "token", "sent", "by", "each", "small",
             "device", "over", "the", "radio"]  # fmt: skip
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(rng.choice(words, 60)) for _ in range(12)))
    config = tmp_path / "text.toml"
    config.write_text(
        f'name = "text-deploy"\n[task]\nname = "text"\n[task.text]\ncorpus = ["{corpus}"]\n'
        f'validation_every = 2\n[hybrid_lm]\ndraft = "{checkpoints[0]}"\n'
        f'target = "{checkpoints[1]}"\nschemes = ["hlm"]\neval_tokens = 64\n'
        "tokens_per_device = 6\n"
    )
    from typer.testing import CliRunner

    from tinylarge.cli.main import app

    out = tmp_path / "out"
    args = ["deploy", "--config", str(config), "--devices", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    hlm = metrics["hybrid_lm_deploy"]["hlm"]
    assert hlm["tokens"] == 12 and hlm["lost"] == 0 and hlm["uplink_fraction"] == 1.0
    assert "hlm" in result.output
    refused = CliRunner().invoke(app, [*args[:3], "--faults", "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "classification" in refused.output
