"""Prometheus metrics of one worker process and its /metrics, /healthz, /readyz server.

worker/base.py records into a WorkerMetrics (one private registry per worker, so
several workers can live in one test process); worker/cli.py starts the HTTP
server. A taken port is logged and skipped: several local worker processes share
loopback on the dev cluster's process node.
"""

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

log = logging.getLogger(__name__)

_SERVICE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_BATCH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_CLAIM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class WorkerMetrics:
    """The worker's metric families, registered in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Counter(
            "backlog_worker_jobs",
            "Claims finished, by stage and outcome "
            "(advanced, done, retry, deadletter, fenced, released, reaped)",
            ["stage", "outcome"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "backlog_worker_processing_seconds",
            "Handler time per stage",
            ["stage"],
            buckets=_SERVICE_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "backlog_worker_in_flight", "Claims held by this worker", registry=self.registry
        )
        self.claim_batch = Histogram(
            "backlog_worker_claim_batch_size",
            "Rows returned per claim statement",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.claim_latency = Histogram(
            "backlog_worker_claim_seconds",
            "Duration of one claim statement",
            buckets=_CLAIM_BUCKETS,
            registry=self.registry,
        )
        self.flush_batch = Histogram(
            "backlog_worker_flush_batch_size",
            "Completions written per statement",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )


def serve(
    port: int,
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
    ready: Callable[[], bool],
    host: str = "0.0.0.0",
) -> ThreadingHTTPServer | None:
    """Serve /metrics, /healthz, /readyz on a daemon thread; None when the port is taken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
            elif self.path.startswith("/readyz"):
                ok = ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the JSON log

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as error:
        log.warning(
            "metrics server disabled", extra={"fields": {"port": port, "error": str(error)}}
        )
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
