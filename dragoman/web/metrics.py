"""Prometheus metrics of one server, in its own registry (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0,
                    8.0, 16.0)


class ServerMetrics:
    """Sessions, rooms, lag, latency histograms and errors, exposed at `/metrics`."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions = Gauge("dragoman_sessions", "Open sessions (attached or awaiting resume)",
                              ["role"], registry=r)
        self.sessions_started = Counter("dragoman_sessions_started", "Sessions started",
                                        ["role"], registry=r)
        self.rooms = Gauge("dragoman_rooms", "Rooms with at least one member", registry=r)
        self.tasks = Gauge("dragoman_event_loop_tasks",
                           "Tasks alive on the server's event loop (at scrape time)", registry=r)
        self.resumes = Counter("dragoman_resumes", "Sessions resumed after a reconnect",
                               registry=r)
        self.errors = Counter("dragoman_errors", "Error messages sent to clients, by code",
                              ["code"], registry=r)
        self.audio_in = Counter("dragoman_audio_in_seconds", "Speaker audio received",
                                registry=r)
        self.lag = Histogram("dragoman_pipeline_lag_seconds",
                             "Pipeline backlog reported by Lag events", ["stage"],
                             buckets=_LATENCY_BUCKETS, registry=r)
        self.commit_latency = Histogram(
            "dragoman_commit_latency_seconds",
            "From the arrival of the source audio an event covers to its broadcast",
            ["kind"], buckets=_LATENCY_BUCKETS, registry=r)
        self.send_delay = Histogram(
            "dragoman_send_delay_seconds",
            "Server-added delay: from an event's broadcast to its write to the socket",
            buckets=_LATENCY_BUCKETS, registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
