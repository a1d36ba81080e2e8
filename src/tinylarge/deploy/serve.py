"""The edge process of a run directory (`tinylarge serve`): the run's large model served to the
enrolled devices until SIGINT or SIGTERM, with the live closed loop and a metrics endpoint.

On a clean stop it writes its counters and its per-reply log into the edge's state directory
(`tinylarge.deploy.files`); a process killed with SIGKILL writes neither, and the supervisor
of a deployment records that (`tinylarge.deploy.supervisor.EdgeExit`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.artefacts import RunArtefacts
from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.edge_model import OnnxPredict, export_large_onnx
from tinylarge.deploy.files import ANSWERED_FILE, READY_FILE, STATS_FILE
from tinylarge.deploy.keys import load_registry
from tinylarge.deploy.layout import EDGE_ID, DeployLayout
from tinylarge.deploy.live_loop import LiveLoop
from tinylarge.deploy.metrics_endpoint import EdgeMetrics
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.server import EdgeServer, ServerConfig


@dataclass(frozen=True)
class EdgeOptions:
    """How `serve` runs the edge.

    Attributes
    ----------
    settings : DeployConfig
        Batching (``edge_max_batch``, ``edge_max_wait_s``) and the replies' ``qos``.
    update_every : int
        Labelled offloads between two pushed tiny models.
    live_loop : bool
        Distil and push new tiny models from the offloads.
    threads : int
        ONNX Runtime intra-op threads.
    metrics_port : int
        Prometheus ``/metrics`` port on 127.0.0.1 (0: none).
    prefix : str
        Topic prefix of the deployment.
    """

    settings: DeployConfig
    update_every: int = 500
    live_loop: bool = True
    threads: int = 1
    metrics_port: int = 0
    prefix: str = "tinylarge"


def _live_loop(run: RunArtefacts, layout: DeployLayout, update_every: int) -> LiveLoop:
    scenario = run.scenario
    return LiveLoop(
        layout.edge_state,
        run.model("tiny"),
        tuple(run.tiny.class_names),
        scenario.colearning.closed_loop.update_training,
        layout.edge(),
        scenario.tiny.target_mcu,
        update_every=update_every,
        temperature=scenario.tiny.distillation.temperature,
        alpha=scenario.tiny.distillation.alpha,
        seed=scenario.seed,
    )


def build_edge(run: RunArtefacts, options: EdgeOptions) -> EdgeServer:
    """The edge server of ``run`` (its large model exported to ONNX on first use, its
    identity made on first use); ``ValueError`` saying what to do when no device is
    enrolled."""
    layout = DeployLayout(run.run_dir)
    if not layout.registry.is_file():
        raise ValueError(
            f"no device registry at {layout.registry}: enroll devices with `tinylarge fleet "
            f"{run.run_dir} --devices N` (on this machine) or copy the fleet's registry.json "
            "there"
        )
    identity, spec = layout.edge(), run.tiny.input_spec
    if not layout.large_onnx.is_file():
        export_large_onnx(run.model("large"), spec.shape, layout.large_onnx)
    metrics = EdgeMetrics()
    if options.metrics_port:
        metrics.serve_http(options.metrics_port)
    settings = options.settings
    return EdgeServer(
        OnnxPredict(layout.large_onnx, threads=options.threads),
        ServerConfig(
            spec.shape,
            spec.scale,
            spec.zero_point,
            len(run.tiny.class_names),
            max_batch=settings.edge_max_batch,
            max_wait_s=settings.edge_max_wait_s,
            qos=settings.qos,
        ),
        identity,
        load_registry(layout.registry),
        topics=Topics(options.prefix),
        metrics=metrics,
        live_loop=_live_loop(run, layout, options.update_every) if options.live_loop else None,
        registry_path=layout.registry,
    )


def serve(
    server: EdgeServer,
    address: BrokerAddress,
    layout: DeployLayout,
    on_ready: Callable[[EdgeServer], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` once connected (the ready file then holds
    the boot id). Over a locked-down broker (``address.tls``) the edge connects with its
    certificate (CN ``edge``, `DeployLayout.tls_for`; ``ValueError`` saying how to make it when
    it is missing); a broker that refuses it for good ends the serving with
    `tinylarge.deploy.mqtt.BrokerRefused` (`EdgeServer.serve`). On the way out, whatever the
    reason: the counters and the per-reply log are written, the ready file removed."""
    tls = layout.tls_for(EDGE_ID) if address.tls else None
    layout.edge_state.mkdir(parents=True, exist_ok=True)
    ready = layout.edge_state / READY_FILE
    ready.unlink(missing_ok=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(server.serve(address, stop, tls))
        connected = asyncio.create_task(server.connected.wait())
        await asyncio.wait({serving, connected}, return_when=asyncio.FIRST_COMPLETED)
        if server.connected.is_set():
            ready.write_text(server.boot_id)
            if on_ready is not None:
                on_ready(server)
        await serving

    try:
        asyncio.run(main())
    finally:
        server.write_stats(layout.edge_state / STATS_FILE)
        server.write_answered(layout.edge_state / ANSWERED_FILE)
        ready.unlink(missing_ok=True)
