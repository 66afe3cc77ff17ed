"""The server's Prometheus metrics (``GET /metrics``), in a registry of its
own so that two servers in one process (tests, notebooks) never share counts."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("portaclass_requests", "HTTP requests answered, by endpoint and status code.",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("portaclass_request_latency_seconds", "Time from request to response.",
                                 ("endpoint",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("portaclass_errors", "Requests answered with an error, by reason.",
                              ("reason",), registry=self.registry)
        self.batch_images = Histogram("portaclass_batch_images", "Images per model call.",
                                      buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("portaclass_batch_requests", "Requests answered per model call.",
                                        buckets=BATCH_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("portaclass_requests_in_flight", "Requests received and not yet answered.",
                               registry=self.registry)
        self.images = Counter("portaclass_images", "Images classified.", registry=self.registry)

    def record_batch(self, images: int, requests: int) -> None:
        self.batch_images.observe(images)
        self.batch_requests.observe(requests)
        self.images.inc(images)

    def record_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def record_error(self, reason: str) -> None:
        self.errors.labels(reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
