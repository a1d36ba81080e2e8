"""The edge server's Prometheus metrics (prometheus_client), on an HTTP endpoint if asked."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

#: Batch-size buckets (requests) and service-time buckets (s).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SERVICE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class EdgeMetrics:
    """Counters of one server, in their own registry (several servers may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tinylarge_edge_requests", "Offloaded frames accepted", registry=r)
        self.rejected = Counter(
            "tinylarge_edge_rejected", "Messages rejected, by reason", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "tinylarge_edge_batch_size", "Requests per model run", buckets=BATCH_BUCKETS, registry=r
        )
        self.service_s = Histogram(
            "tinylarge_edge_service_seconds",
            "Model time per batch",
            buckets=SERVICE_BUCKETS,
            registry=r,
        )
        self.model_version = Gauge(
            "tinylarge_edge_model_version", "Version of the tiny model pushed last", registry=r
        )

    def serve_http(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``host:port`` (a daemon thread)."""
        start_http_server(port, host, registry=self.registry)
