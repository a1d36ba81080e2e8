"""The child processes of the hybrid language model's deployment: the edge and the fleet, each
started as ``python -m tinylarge.deploy.hlm_processes edge|fleet SPEC.json``.

`HlmSpec` is everything both need, written once by `tinylarge.deploy.hlm_run` as JSON: the
broker, the topic prefix, the run directory holding the identities
(`tinylarge.deploy.layout.DeployLayout`), the models, the schemes and their thresholds, the
batching and timers, the devices' prompts, the link plans (``.npz``) and where the fleet writes
its records. The edge runs until SIGINT or SIGTERM and then writes its counters
(`tinylarge.deploy.serve.serve`); the fleet runs every scheme and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.config.hybrid_lm_config import HybridLmConfig, HybridSchemeName
from tinylarge.deploy.broker import parse_broker_url
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.hlm_fleet import LmFleet, SchemeRun, StreamSettings
from tinylarge.deploy.hlm_link import TokenLinkPlan
from tinylarge.deploy.hlm_protocol import lm_topics
from tinylarge.deploy.hlm_records import save_token_records
from tinylarge.deploy.hlm_server import LmEdgeServer
from tinylarge.deploy.keys import edge_public_key, load_registry
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.serve import serve
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, make_scheme
from tinylarge.models.text.checkpoints import load_language_model

#: Fields of a `TokenLinkPlan` stored per scheme in the links ``.npz``.
_PLAN_ARRAYS = ("uplink_s", "outage", "lost", "downlink_s", "reply_lost")


@dataclass(frozen=True)
class HlmSpec:
    """One deployment of the hybrid language model, as its processes read it.

    Attributes
    ----------
    run_dir : str
        Holds the identities and the edge's state (`DeployLayout`).
    broker : str
        ``mqtt://HOST:PORT``, or ``mqtts://HOST:PORT`` for a locked-down broker: the edge and
        the devices then connect with their certificates from ``run_dir``
        (`DeployLayout.tls_for`).
    prefix : str
        Topic prefix (`tinylarge.deploy.hlm_protocol.lm_topics`).
    draft, target : str
        Model specs (`tinylarge.models.text.checkpoints.load_language_model`).
    hybrid : dict
        The scenario's ``[hybrid_lm]`` (temperature, uncertainty, truncation ...).
    schemes : list of str
        Run in this order.
    thresholds : dict
        Skip thresholds of ``u_hlm`` / ``cu_hlm``.
    deploy : dict
        The scenario's ``[deploy]`` (batching, reply deadline, QoS).
    devices, tokens_per_device : int
    prompts : list of list of int
        Device ``i`` starts from ``prompts[i % len(prompts)]``.
    seed : int
    retry_s : float
        A request without a reply is re-sent after this long, s.
    sync_tokens : int
        Tokens of its sequence a FULL request carries.
    links : str or None
        The link plans (`save_link_plans`), None: no link emulation.
    records : str
        Where the fleet writes its records (`save_token_records`) and, beside them,
        ``*.events.json``.
    started_file : str or None
        The fleet writes the first scheme's start (`time.time`) here (`LmFleet.run`).
    """

    run_dir: str
    broker: str
    prefix: str
    draft: str
    target: str
    hybrid: dict[str, Any]
    schemes: list[HybridSchemeName]
    thresholds: dict[str, float]
    deploy: dict[str, Any]
    devices: int
    tokens_per_device: int
    prompts: list[list[int]]
    seed: int = 0
    retry_s: float = 0.1
    sync_tokens: int = 128
    links: str | None = None
    records: str = "token_records.npz"
    started_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(asdict(self), indent=1))
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> HlmSpec:
        return HlmSpec(**json.loads(Path(path).read_text()))

    @property
    def settings(self) -> DeployConfig:
        return DeployConfig.model_validate(self.deploy)

    def make_schemes(self) -> dict[str, HybridScheme]:
        """The schemes by name, as `make_scheme` builds them from ``hybrid``."""
        config = HybridLmConfig.model_validate(self.hybrid)
        return {name: make_scheme(name, config, self.thresholds.get(name)) for name in self.schemes}


def save_link_plans(plans: Mapping[str, TokenLinkPlan], path: str | Path) -> None:
    """Every scheme's link plan in one ``.npz`` (``SCHEME/FIELD``; scalars as 0-d arrays)."""
    arrays: dict[str, Any] = {}
    for name, plan in plans.items():
        arrays[f"{name}/draft_s"], arrays[f"{name}/seal_s"] = plan.draft_s, plan.seal_s
        for key in _PLAN_ARRAYS:
            arrays[f"{name}/{key}"] = getattr(plan, key)
    np.savez(path, **arrays)


def load_link_plans(path: str | Path) -> dict[str, TokenLinkPlan]:
    """The plans `save_link_plans` wrote, by scheme."""
    with np.load(path) as data:
        names = sorted({key.partition("/")[0] for key in data.files})
        return {
            n: TokenLinkPlan(
                float(data[f"{n}/draft_s"]),
                float(data[f"{n}/seal_s"]),
                *(data[f"{n}/{key}"] for key in _PLAN_ARRAYS),
            )
            for n in names
        }


def serve_edge(spec: HlmSpec) -> None:
    """Serve the target model until SIGINT or SIGTERM (counters into the edge's state)."""
    torch.set_num_threads(1)
    layout = DeployLayout(Path(spec.run_dir))
    settings = spec.settings
    server = LmEdgeServer(
        load_language_model(spec.target, role="target"),
        {n: s for n, s in spec.make_schemes().items() if s.uses_target_model},
        layout.edge(),
        load_registry(layout.registry),
        topics=lm_topics(spec.prefix),
        max_batch=settings.edge_max_batch,
        max_wait_s=settings.edge_max_wait_s,
        qos=settings.qos,
        seed=spec.seed,
        registry_path=layout.registry,
    )
    serve(server, parse_broker_url(spec.broker), layout)


def run_fleet(spec: HlmSpec) -> None:
    """Run every scheme over the fleet; write the records and the devices' events."""
    torch.set_num_threads(1)
    layout = DeployLayout(Path(spec.run_dir))
    settings = spec.settings
    config = FleetConfig(deadline_s=settings.reply_deadline_s, qos=settings.qos)
    address, identities = parse_broker_url(spec.broker), layout.enroll(spec.devices)
    fleet = LmFleet(
        load_language_model(spec.draft, role="draft"),
        identities,
        edge_public_key(layout.edge_public),
        topics=lm_topics(spec.prefix),
        config=config,
        settings=StreamSettings(settings.reply_deadline_s, spec.retry_s, spec.sync_tokens),
        tls=[layout.tls_for(i.device_id) for i in identities] if address.tls else None,
    )
    plans = load_link_plans(spec.links) if spec.links is not None else {}
    runs = [
        SchemeRun(scheme, spec.prompts, spec.tokens_per_device, spec.seed, plans.get(name))
        for name, scheme in spec.make_schemes().items()
    ]
    started = None if spec.started_file is None else Path(spec.started_file)
    records = asyncio.run(fleet.run(address, runs, started))
    save_token_records(records, spec.records)
    Path(f"{spec.records}.events.json").write_text(json.dumps(asdict(fleet.events)))


def main(argv: list[str]) -> int:
    """``edge SPEC.json`` or ``fleet SPEC.json``; the exit code."""
    if len(argv) != 2 or argv[0] not in ("edge", "fleet"):
        print("usage: python -m tinylarge.deploy.hlm_processes edge|fleet SPEC.json")
        return 2
    spec = HlmSpec.load(argv[1])
    (serve_edge if argv[0] == "edge" else run_fleet)(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
