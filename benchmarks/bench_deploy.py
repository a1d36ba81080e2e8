"""The running system on one machine: how much load the edge takes with p99 under 50 ms.

Run by hand::

    python benchmarks/bench_deploy.py --model                 # ONNX Runtime vs PyTorch
    python benchmarks/bench_deploy.py [--preset smoke] [--devices 100,250,500,1000]
        [--duration 10] [--policy large] [--processes 1]
    python benchmarks/bench_deploy.py --large rf_transformer:size=s --policy router \
        --search --devices 250 --batching 32 --qos 1      # largest fleet, foundation model
    python benchmarks/bench_deploy.py --devices 1000 --transport mqtt-tls,mqtt --qos 1 \
        --batching 32                                     # TLS vs plaintext, broker CPU
    python benchmarks/bench_deploy.py --soak-minutes 30 --devices 500 --batching 32 --qos 1
    python benchmarks/bench_deploy.py --storm --devices 1000 --duration 30 --batching 32 --qos 1

``--model`` times the large models per batch in ONNX Runtime and in PyTorch (one thread
each): why the edge serves with ONNX Runtime. It times the preset's large model (as changed by
``--large``), the foundation model `rf_transformer` at size s and the from-scratch
`large_resnet` at its default width; the foundation model is built with ``checkpoint="none"``
(its arithmetic, hence its latency, does not depend on the weights). ``--large NAME[:KEY=VALUE,
...]`` replaces the preset's ``[models.large]`` (and turns its ``[foundation]`` comparison off:
the benchmark is about serving). ``--search`` finds the largest fleet at 1 request/s per device
whose requests answered by the edge have p99 < 50 ms with 0 lost: it doubles the fleet from the
first ``--devices`` value until the goal is missed, then bisects to ``--resolution``; with
``--policy router`` only the frames the router offloads reach the edge, which is what makes a
large model affordable. The load sweep runs `tinylarge.deploy.run` (broker,
edge server and fleet as separate processes on this machine) for each fleet size at 1 request
per second per device, with dynamic batching (largest batch 32, 2 ms wait) and without
(largest batch 1), at MQTT QoS 1 and 0 for offloads and replies, and prints p50/p95/p99
end-to-end latency, lost and timed-out requests,
the edge's throughput and mean batch; then the highest load with p99 < 50 ms and 0 lost for
each. ``--policy large`` (the default) offloads every request: the edge sees the full rate.

``--transport mqtt-tls,mqtt`` runs each fleet size over the locked-down broker (mutual TLS,
per-device ACLs, CRL) and over plain MQTT and prints p50/p99 and the CPU seconds of the broker,
the edge and the fleet (`process_usage`). ``--soak-minutes M`` runs one fleet for M minutes and
prints, each minute, the resident memory and open file descriptors of the broker, the edge and
the fleet, and the p99 of the requests scheduled in that minute. ``--storm`` restarts the
broker in the middle of a run (every device reconnects at once, each with its TLS handshake)
and prints how long until every device was answered by the edge again.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

P99_GOAL_S = 0.050


#: Large models `bench_model` always times besides the preset's: the foundation model at the
#: size the package ships (random weights: latency does not depend on them) and the ResNet.
BENCH_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("rf_transformer", {"size": "s", "checkpoint": "none"}),
    ("large_resnet", {}),
)


def parse_model(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:KEY=VALUE,...]`` -> name and options (integers and floats where they parse)."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--large: {item!r} is not KEY=VALUE (format NAME[:KEY=VALUE,...])")
        for kind in (int, float):
            try:
                options[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            options[key] = value
    return name, options


def load_scenario(preset: str, large: str | None) -> Any:
    """The preset's scenario, with ``[models.large]`` replaced by ``large`` (`parse_model`) and
    then its ``[foundation]`` comparison off."""
    from tinylarge.config import load_preset, scenario_from_table
    from tinylarge.config.loading import scenario_to_table

    scenario = load_preset(preset)
    if large is None:
        return scenario
    name, options = parse_model(large)
    table = scenario_to_table(scenario)
    table["models"]["large"] = {"name": name, "options": options}
    if "foundation" in table:
        table["foundation"]["enabled"] = False
    return scenario_from_table(table, scenario.name)


def bench_model(preset: str, large: str | None) -> None:
    import torch

    from tinylarge.deploy.edge_model import OnnxPredict, TorchPredict, export_large_onnx
    from tinylarge.models.registry import build_model

    torch.set_num_threads(1)
    spec = load_scenario(preset, large).models.large
    shape = (2, 128)
    models = [(spec.name, dict(spec.options))]

    def same(a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]]) -> bool:
        """The same architecture (weights do not change the latency)."""
        drop = {"checkpoint"}
        return a[0] == b[0] and {k: v for k, v in a[1].items() if k not in drop} == {
            k: v for k, v in b[1].items() if k not in drop
        }

    models += [m for m in BENCH_MODELS if not any(same(m, n) for n in models)]
    for name, options in models:
        model = build_model(name, shape, 8, options, seed=0).eval()
        path = export_large_onnx(model, shape, Path(tempfile.mkdtemp()) / "large.onnx")
        params = sum(p.numel() for p in model.parameters())
        print(f"{name} {options}: {params:,} parameters (preset {preset!r})")
        time_model({"onnxruntime": OnnxPredict(path), "torch": TorchPredict(model)}, shape)


def time_model(runtimes: dict[str, Any], shape: tuple[int, ...]) -> None:
    """Median of 30 calls (after 5 warm-up calls) per batch size and runtime."""
    for n in (1, 8, 32, 128):
        x = np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)
        row = []
        for name, predict in runtimes.items():
            for _ in range(5):
                predict(x)
            times = []
            for _ in range(30):
                t = time.perf_counter()
                predict(x)
                times.append(time.perf_counter() - t)
            row.append(f"{name} {1e3 * float(np.median(times)):.3f} ms")
        print(f"  batch {n:4d}: " + ", ".join(row))


def deploy_once(run_dir: Path | None, preset: str, devices: int, args: argparse.Namespace,
                max_batch: int, qos: int, out: Path, *, transport: str | None = None,
                duration_s: float | None = None, faults: Any = None) -> dict[str, Any]:  # fmt: skip
    """One `tinylarge.deploy.run` (broker, edge and fleet as processes); its ``deploy`` metrics
    (the result itself under the key ``"_result"``)."""
    from tinylarge.config.deploy_config import with_overrides
    from tinylarge.deploy import DeployError
    from tinylarge.deploy import run as deploy_run

    scenario = load_scenario(preset, args.large)
    settings = with_overrides(
        scenario.deploy,
        "bench_deploy.py",
        {"edge_max_batch": max_batch, "qos": qos, "processes": args.processes,
         "transport": transport or args.transport.split(",")[0]},
    )  # fmt: skip
    try:
        result = deploy_run(
            scenario.model_copy(update={"deploy": settings}), run_dir=out, devices=devices,
            rate_per_device_hz=1.0, duration_s=duration_s or args.duration, policy=args.policy,
            models=run_dir, emulate_link=args.emulate_link, update_every=1_000_000,
            faults=faults,
        )  # fmt: skip
    except DeployError as error:
        raise SystemExit(f"deploy failed for {devices} devices: {error}") from None
    return {**result.deploy, "_result": result}


def bench_transport(args: argparse.Namespace, work: Path) -> None:
    """TLS against plaintext: each ``--transport`` at each ``--devices`` (1 request/s per
    device), p50/p99 of the answers and the CPU seconds of the broker, the edge and the fleet
    over the whole deployment (the connections and handshakes at its start included)."""
    from process_usage import ProcessMonitor

    max_batch, qos = int(args.batching.split(",")[0]), int(args.qos.split(",")[0])
    print(f"\ntransport comparison: policy {args.policy}, max_batch {max_batch}, QoS {qos}, "
          f"{args.duration:g} s per run, {args.processes} fleet process(es)")  # fmt: skip
    run_dir: Path | None = None
    p99: dict[tuple[str, int], float] = {}
    for devices in (int(d) for d in args.devices.split(",")):
        for transport in args.transport.split(","):
            monitor = ProcessMonitor(every_s=5.0).start()
            out = work / f"{transport}-{devices}"
            d = deploy_once(run_dir, args.preset, devices, args, max_batch, qos, out,
                            transport=transport)  # fmt: skip
            samples = monitor.stop()
            usage = samples[-1]  # CPU seconds: each process's last reading, kept after it ended
            usage.rss_mb = {r: max(s.rss_mb[r] for s in samples) for r in usage.rss_mb}
            run_dir = run_dir or out / "run"
            lat = d["latency_s"]
            p99[(transport, devices)] = lat["p99"]
            refused = d.get("broker_refused", {})
            print(f"  {transport:8s} {devices:5d} devices: {d['requests']:6d} requests, p50 "
                  f"{1e3 * lat['p50']:.1f} p99 {1e3 * lat['p99']:.1f} ms, lost {d['lost']}, timed "
                  f"out {d['timed_out']}, broker CPU {usage.cpu_s['broker']:.1f} s, edge CPU "
                  f"{usage.cpu_s['edge']:.1f} s, fleet CPU {usage.cpu_s['fleet']:.1f} s, broker "
                  f"peak RSS {usage.rss_mb['broker']:.1f} MB, unattached at start "
                  f"{d.get('devices_unattached_at_start')}, refused {refused or 'none'}"
                  f"{'' if goal_met(d) else '  <- misses the goal'}", flush=True)  # fmt: skip
        if ("mqtt", devices) in p99 and ("mqtt-tls", devices) in p99:
            ratio = p99[("mqtt-tls", devices)] / p99[("mqtt", devices)]
            print(f"  {devices} devices: TLS p99 / plaintext p99 = {ratio:.2f} "
                  f"(goal < 1.20)")  # fmt: skip


def per_minute_p99(result: Any) -> list[tuple[int, int, float | None]]:
    """(minute, requests, p99 latency in s) of the requests scheduled in each minute."""
    records = result.records
    minute = (records.scheduled_s // 60).astype(int)
    out = []
    for m in range(int(minute.max()) + 1 if minute.size else 0):
        lat = records.latency_s[(minute == m) & np.isfinite(records.latency_s)]
        out.append(
            (m, int((minute == m).sum()), float(np.percentile(lat, 99)) if lat.size else None)
        )
    return out


def made_models(args: argparse.Namespace, work: Path) -> Path:
    """The preset's models (trained models from the cache), made before anything is timed."""
    from tinylarge.deploy.artefacts import make_models

    return make_models(load_scenario(args.preset, args.large), work / "models").run_dir


def bench_soak(args: argparse.Namespace, work: Path) -> None:
    """``--soak-minutes`` of ``--devices`` (first value) at 1 request/s: RSS and open file
    descriptors of the broker, the edge and the fleet and the p99 of each minute, 0 lost."""
    from process_usage import ProcessMonitor

    devices, minutes = int(args.devices.split(",")[0]), args.soak_minutes
    transport = args.transport.split(",")[0]
    max_batch, qos = int(args.batching.split(",")[0]), int(args.qos.split(",")[0])
    print(f"\nsoak: {devices} devices x 1 request/s for {minutes:g} min, {transport}, policy "
          f"{args.policy}, max_batch {max_batch}, QoS {qos}", flush=True)  # fmt: skip
    models = made_models(args, work)
    monitor = ProcessMonitor(every_s=60).start()
    d = deploy_once(models, args.preset, devices, args, max_batch, qos, work / "soak",
                    transport=transport, duration_s=60 * minutes)  # fmt: skip
    samples = [s for s in monitor.stop() if any(s.rss_mb.values())]
    print("  minute | broker RSS MB, fds | edge RSS MB, fds | fleet RSS MB, fds | CPU s b/e/f"
          "  (minutes since the broker, edge and fleet were started)")  # fmt: skip
    for s in samples:
        print(f"  {s.t_s / 60:6.1f} | {s.rss_mb['broker']:7.1f} {s.fds['broker']:5d} | "
              f"{s.rss_mb['edge']:7.1f} {s.fds['edge']:5d} | {s.rss_mb['fleet']:7.1f} "
              f"{s.fds['fleet']:5d} | {s.cpu_s['broker']:.0f}/{s.cpu_s['edge']:.0f}/"
              f"{s.cpu_s['fleet']:.0f}")  # fmt: skip
    print("  minute | requests | p99 ms")
    for m, n, q in per_minute_p99(d["_result"]):
        print(f"  {m:6d} | {n:8d} | {'-' if q is None else f'{1e3 * q:.1f}'}")
    lat = d["latency_s"]
    print(f"  whole run: {d['requests']:,} requests, p50 {1e3 * lat['p50']:.1f} p99 "
          f"{1e3 * lat['p99']:.1f} ms, lost {d['lost']}, timed out {d['timed_out']}")  # fmt: skip


def bench_storm(args: argparse.Namespace, work: Path) -> None:
    """Every device reconnects at once: the broker is restarted (SIGTERM, down 1 s) in the
    middle of a run of ``--devices`` (first value); the time from the broker's return until
    every device that sent a request since was answered by the edge again."""
    from tinylarge.deploy.faults import FaultPlan
    from tinylarge.deploy.records import BY_EDGE

    devices = int(args.devices.split(",")[0])
    transport = args.transport.split(",")[0]
    max_batch, qos = int(args.batching.split(",")[0]), int(args.qos.split(",")[0])
    at_s = args.duration / 2
    plan = FaultPlan({"broker_restart": at_s}, broker_down_s=1.0)
    print(f"\nreconnect storm: {devices} devices, {transport}, broker restarted at {at_s:g} s "
          f"of {args.duration:g} s", flush=True)  # fmt: skip
    d = deploy_once(made_models(args, work), args.preset, devices, args, max_batch, qos,
                    work / "storm",
                    transport=transport, faults=plan)  # fmt: skip
    records = d["_result"].records
    fault = d["faults"]["broker_restart"]
    back = fault["restored_s"]
    after = (records.route == BY_EDGE) & (records.sent_s >= back)
    first: dict[int, float] = {}
    for dev, t in zip(records.device[after], records.answered_s[after], strict=True):
        first[int(dev)] = min(first.get(int(dev), np.inf), float(t))
    waits = np.array(sorted(first.values())) - back
    print(f"  broker back at {back:.2f} s; devices answered by the edge again: {len(first)} of "
          f"{devices}; time until all were: {waits.max():.2f} s (p50 {np.median(waits):.2f} s); "
          f"recovery (first answer) {fault['recovery_s']:.2f} s; in the fault's window: "
          f"{fault['requests']} requests, {fault['answered']} answered by the edge, "
          f"{fault['fell_back']} fell back, {fault['lost']} lost")  # fmt: skip
    print(
        "  (a device is counted when its first request after the broker's return is "
        "answered: at 1 request/s that adds up to a few seconds of waiting for a request)"
    )


def goal_met(d: dict[str, Any]) -> bool:
    """p99 of the answers the edge gave (every answer when none did) < 50 ms, 0 lost."""
    edge_p99 = d["edge_latency_s"]["p99"]
    p99 = edge_p99 if edge_p99 is not None else d["latency_s"]["p99"]
    return p99 is not None and p99 < P99_GOAL_S and d["lost"] == 0


def describe(devices: int, d: dict[str, Any], duration_s: float) -> str:
    lat, edge, by_edge = d["latency_s"], d["edge"], d["edge_latency_s"]
    edge_p99 = "-" if by_edge["p99"] is None else f"{1e3 * by_edge['p99']:.1f}"
    return (
        f"  {devices:5d} devices: {d['requests']:6d} requests ({d['requests'] / duration_s:.0f}/s),"
        f" p50 {1e3 * lat['p50']:.1f} p95 {1e3 * lat['p95']:.1f} p99 {1e3 * lat['p99']:.1f} ms,"
        f" answered by the edge {d['answered_by_edge']} (offload {d['offload_fraction']:.0%}, "
        f"p99 {edge_p99} ms), lost {d['lost']}, timed out {d['timed_out']}, edge "
        f"{edge['requests_per_s'] or 0:.0f} req/s, mean batch {edge['mean_batch']:.2f}"
        f"{'' if goal_met(d) else '  <- misses the goal'}"
    )


def search_fleet(args: argparse.Namespace, work: Path) -> None:
    """Largest fleet meeting `goal_met`: double from the first ``--devices`` value until the
    goal is missed, then bisect until the bracket is within ``--resolution`` of its low end."""
    max_batch, qos = int(args.batching.split(",")[0]), int(args.qos.split(",")[0])
    print(
        f"\nfleet search: policy {args.policy}, max_batch {max_batch}, QoS {qos}, 1 request/s "
        f"per device, {args.duration:g} s per run, {args.processes} fleet process(es)"
    )
    run_dir: Path | None = None

    def meets(devices: int) -> bool:
        nonlocal run_dir
        out = work / f"search-{devices}"
        d = deploy_once(run_dir, args.preset, devices, args, max_batch, qos, out)
        run_dir = run_dir or out / "run"  # models made once, reused
        print(describe(devices, d, args.duration), flush=True)
        return goal_met(d)

    low, high = 0, int(args.devices.split(",")[0])
    while meets(high):
        low, high = high, 2 * high
        if high > args.max_devices:
            print(f"the goal is met at {low} devices; not searched beyond --max-devices")
            return
    while high - low > max(1, args.resolution * low):
        middle = (low + high) // 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    print(f"largest fleet with p99 < 50 ms at the edge and 0 lost: {low} devices x 1 request/s "
          f"(missed at {high})")  # fmt: skip


def add_point(
    curves: dict[str, tuple[list[float], list[float]]], name: str, x: float, y: float
) -> None:
    xs, ys = curves.setdefault(name, ([], []))
    xs.append(x)
    ys.append(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="store_true", help="only time the large model")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--devices", default="100,250,500,1000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--policy", default="large")
    parser.add_argument("--processes", type=int, default=2, help="fleet processes")
    parser.add_argument("--qos", default="1,0", help="MQTT QoS of offloads and replies")
    parser.add_argument(
        "--emulate-link",
        action="store_true",
        help="emulate the radio; also print and plot the simulator's p99",
    )
    parser.add_argument("--batching", default="32,1", help="max_batch values to sweep")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of p99 against load")
    parser.add_argument("--large", default=None, help="NAME[:KEY=VALUE,...]: the large model")
    parser.add_argument("--search", action="store_true", help="find the largest fleet")
    parser.add_argument("--resolution", type=float, default=0.1, help="of the fleet search")
    parser.add_argument("--max-devices", type=int, default=20_000, help="fleet search bound")
    parser.add_argument(
        "--transport", default="mqtt-tls", help="mqtt-tls and/or mqtt; two: compare them"
    )
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="soak test length")
    parser.add_argument("--storm", action="store_true", help="broker restart: reconnect storm")
    args = parser.parse_args()
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {now}")  # fmt: skip
    if args.model:
        bench_model(args.preset, args.large)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    if args.search:
        search_fleet(args, work)
        return
    if args.soak_minutes > 0:
        bench_soak(args, work)
        return
    if args.storm:
        bench_storm(args, work)
        return
    if "," in args.transport:
        bench_transport(args, work)
        return
    run_dir: Path | None = None
    best: dict[str, int] = {}
    configs = [
        (f"QoS {q}, {'no batching' if b == '1' else f'dynamic batching ({b})'}", int(b), int(q))
        for q in args.qos.split(",")
        for b in args.batching.split(",")
    ]
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for label, max_batch, qos in configs:
        print(f"\n{label} (max_batch {max_batch}), policy {args.policy}, 1 request/s per "
              f"device, {args.processes} fleet process(es)")  # fmt: skip
        for devices in (int(d) for d in args.devices.split(",")):
            out = work / f"{max_batch}-{qos}-{devices}"
            d = deploy_once(run_dir, args.preset, devices, args, max_batch, qos, out)
            run_dir = run_dir or out / "run"  # models made once, reused
            lat, edge = d["latency_s"], d["edge"]  # type: ignore[index]
            ok = lat["p99"] is not None and lat["p99"] < P99_GOAL_S and d["lost"] == 0  # type: ignore[index]
            if ok:
                best[label] = max(best.get(label, 0), devices)
            if "sim_vs_real" in d:
                both = d["sim_vs_real"]["latency_s"]
                sim = both["p99"]["sim"]
                curves.setdefault(f"{label}: simulated", ([], []))[0].append(
                    d["requests"] / args.duration
                )
                curves[f"{label}: simulated"][1].append(1e3 * sim)
                print(f"  {devices:5d} devices: simulated p50 {1e3 * both['p50']['sim']:.1f} p99 "
                      f"{1e3 * sim:.1f} ms, sim/real p50 {both['p50']['ratio']:.2f} p95 "
                      f"{both['p95']['ratio']:.2f} p99 {both['p99']['ratio']:.2f}; transport "
                      f"{1e3 * d['sim_vs_real']['transport_s']:.2f} ms")  # fmt: skip
            curves.setdefault(f"{label}: measured", ([], []))[0].append(
                d["requests"] / args.duration
            )
            curves[f"{label}: measured"][1].append(1e3 * lat["p99"])
            print(
                f"  {devices:5d} devices: {d['requests']:6d} requests, p50 {1e3 * lat['p50']:.1f} "  # type: ignore[index]
                f"p95 {1e3 * lat['p95']:.1f} p99 {1e3 * lat['p99']:.1f} ms, lost {d['lost']}, "  # type: ignore[index]
                f"timed out {d['timed_out']}, edge {edge['requests_per_s'] or 0:.0f} req/s, "  # type: ignore[index]
                f"mean batch {edge['mean_batch']:.2f}{'' if ok else '  <- misses the goal'}"  # type: ignore[index]
            )
    if args.plot is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.add_subplot()
        for name, (x, y) in curves.items():
            ax.plot(x, y, marker="o", linestyle="--" if "simulated" in name else "-", label=name)
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel("p99 latency (ms)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    for label, _, _ in configs:
        print(f"highest load with p99 < 50 ms and 0 lost, {label}: "
              f"{best.get(label, 0)} devices x 1 request/s")  # fmt: skip


if __name__ == "__main__":
    main()
