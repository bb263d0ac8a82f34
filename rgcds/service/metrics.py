"""Prometheus metrics of the daemon, on their own registry and a configurable port."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

STAGES = (
    "index", "classify", "convert", "preprocess", "segment", "measure",
    "radiomics", "predict", "write", "export",
)


@dataclass
class Metrics:
    """The daemon's metrics. One instance per process; pass it explicitly."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.instances_received = Counter(
            "rgcds_instances_received", "DICOM instances stored by the listener", registry=r
        )
        self.instances_rejected = Counter(
            "rgcds_instances_rejected", "C-STORE requests answered with a failure", ["reason"],
            registry=r,
        )
        self.studies_received = Counter(
            "rgcds_studies_received", "Studies that became stable and were queued", registry=r
        )
        self.studies_processed = Counter(
            "rgcds_studies_processed", "Studies processed to the end", registry=r
        )
        self.studies_failed = Counter(
            "rgcds_studies_failed", "Studies whose processing failed", ["stage"], registry=r
        )
        self.stage_seconds = Histogram(
            "rgcds_stage_seconds", "Duration of each processing stage", ["stage"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600), registry=r,
        )
        self.queue_depth = Gauge(
            "rgcds_queue_depth", "Studies queued and waiting for processing", registry=r
        )
        self.export_retries = Counter(
            "rgcds_export_retries", "Result deliveries that were retried", ["destination"],
            registry=r,
        )
        self.exports_failed = Counter(
            "rgcds_exports_failed", "Result deliveries that failed permanently", ["destination"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)


__all__ = ["STAGES", "Metrics"]
