"""`run_hybrid_lm` survives an edge that dies for good: the real edge process (``python -m
tinylarge.deploy.hlm_processes edge``) SIGKILLed mid-run or while the devices handshake, as by
the kernel's OOM killer, and never restarted (a dead edge is not restarted, as for
classification). The run ends normally with ``metrics.json``; every device generated all its
tokens, those after the death its own, timed out; nothing is lost, and ``deploy.edge_exit``
says how and when."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
import torch

from tinylarge.config import Scenario
from tinylarge.deploy.broker import Broker
from tinylarge.deploy.hlm_run import run_hybrid_lm
from tinylarge.deploy.progress import SilentProgress
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, TIMED_OUT
from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import save_lm_checkpoint
from tinylarge.models.text.tokenizer import train_bpe

DEVICES, TOKENS, DEADLINE_S = 2, 30, 0.2
#: Replies the edge sends before it is killed (over both devices).
KILL_AFTER = 8


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """A text scenario over a random toy draft and target (HLM: every token goes to the edge)
    with a short reply deadline."""
    docs = ["The edge verifies the draft token of every device. " * 4] * 8
    tokenizer = train_bpe(docs, vocab_size=300)
    root = tmp_path_factory.mktemp("lm")
    for role, seed in (("draft", 0), ("target", 1)):
        torch.manual_seed(seed)
        model = CausalTransformer(lm_architecture("toy", tokenizer.vocab_size))
        save_lm_checkpoint(root / role, model, tokenizer, {"steps": 0})
    return Scenario.model_validate(
        {"name": "hlm-edge-death", "task": {"name": "text"},
         "hybrid_lm": {"draft": str(root / "draft"), "target": str(root / "target"),
                       "schemes": ["hlm"]},
         "deploy": {"reply_deadline_s": DEADLINE_S}}
    )  # fmt: skip


class KillAfter(SilentProgress):
    """SIGKILL the edge once ``after`` messages on ``topic`` (``hello`` or ``down``, of any
    device) have reached the broker."""

    def __init__(self, broker: Broker, topic: str, after: int) -> None:
        self.broker, self.topic, self.after = broker, topic, after
        self.killed_unix = float("nan")
        self._listening = threading.Event()

    def edge_ready(self, pid: int, topics: Topics) -> None:
        threading.Thread(target=asyncio.run, args=(self._watch(pid, topics),), daemon=True).start()
        assert self._listening.wait(10), "the observer did not subscribe"

    async def _watch(self, pid: int, topics: Topics) -> None:
        address, seen = self.broker.address, 0
        async with aiomqtt.Client(address.host, address.port) as client:
            await client.subscribe(f"{topics.prefix}/{self.topic}/+", qos=0)
            self._listening.set()
            async for _ in client.messages:
                seen += 1
                if seen == self.after:
                    os.kill(pid, signal.SIGKILL)
                    self.killed_unix = time.time()
                    return


def test_an_edge_killed_mid_run_loses_no_token(
    scenario: Scenario, broker: Broker, tmp_path: Path
) -> None:
    progress = KillAfter(broker, "down", KILL_AFTER)  # mid-sequence, in step with the edge
    begun = time.monotonic()
    result = run_hybrid_lm(scenario, run_dir=tmp_path, devices=DEVICES, tokens_per_device=TOKENS,
                           broker=broker.address.url, prompts=[[5, 6, 7], [8, 9]],
                           progress=progress)  # fmt: skip
    assert time.monotonic() - begun < 30.0
    assert json.loads(result.metrics_path.read_text()) == result.metrics
    died, deploy = result.metrics["deploy"]["edge_exit"], result.metrics["deploy"]
    assert died["signal"] == "SIGKILL" and died["exit_code"] is None
    assert result.edge_exit is not None and result.edge_exit.returncode == -signal.SIGKILL
    assert abs(result.edge_exit.ended_unix - progress.killed_unix) < 1.0  # the kill we made
    assert 0 < died["at_s"] < died["uptime_s"]  # mid-run, on the schedule's clock
    # no counters from a killed edge, so no transport split either
    assert deploy["edge"] == {} and deploy["transport_s"] is None
    row, records = result.metrics["hybrid_lm_deploy"]["hlm"], result.records["hlm"]
    assert row["tokens"] == DEVICES * TOKENS and row["lost"] == 0
    assert (records.token >= 0).all()  # every device generated every token
    # the edge decided tokens while it lived, the devices' own drafts after, all counted
    assert row["by_edge"] >= KILL_AFTER - 2 and row["timed_out"] > 0
    assert row["by_edge"] + row["timed_out"] == DEVICES * TOKENS
    assert row["timed_out"] == int((records.route == TIMED_OUT).sum())
    after = records.started_s > died["at_s"]
    assert after.sum() > DEVICES * TOKENS // 2
    assert (records.route[after] == TIMED_OUT).all()
    assert not (records.route[after] == BY_EDGE).any()
    # each waited its reply deadline (re-sent meanwhile) before keeping its own draft
    waited = (records.ended_s - records.started_s)[records.route == TIMED_OUT]
    assert np.all(waited >= 0.95 * DEADLINE_S)
    tries = records.attempts[after]
    assert (tries >= 1).all() and tries.sum() > after.sum()


def test_an_edge_killed_while_the_devices_handshake(
    scenario: Scenario, broker: Broker, tmp_path: Path
) -> None:
    tokens = 8
    result = run_hybrid_lm(scenario, run_dir=tmp_path, devices=DEVICES, tokens_per_device=tokens,
                           broker=broker.address.url, prompts=[[5, 6, 7]],
                           progress=KillAfter(broker, "hello", 1))  # fmt: skip
    deploy = result.metrics["deploy"]
    died, events = deploy["edge_exit"], deploy["fleet_events"]
    assert died["signal"] == "SIGKILL" and died["at_s"] < 0 < died["uptime_s"]  # before any token
    # devices left without a session kept trying, and meanwhile kept their own drafts
    assert events["unattached_at_start"] >= 1 and events["hello_retries"] >= 1
    row, records = result.metrics["hybrid_lm_deploy"]["hlm"], result.records["hlm"]
    assert row["tokens"] == DEVICES * tokens and row["lost"] == 0
    assert (records.token >= 0).all() and (records.route == TIMED_OUT).all()
    # with no session nothing could be sent: the devices waited their deadline regardless
    waited = records.ended_s - records.started_s
    assert np.all(waited >= 0.95 * DEADLINE_S)
