"""Prometheus metrics of one service (its own registry, so tests can run several apps).

Counted here rather than logged as events: checkpoint, proof and tile reads (monitors poll
them), ingest volume and latency, rejected requests by reason. Tree size and checkpoint age are
read from the logs at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sealtrail.core.errors import SealtrailError
from sealtrail.core.timefmt import parse_time
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.watch import Result
from sealtrail.server.logs import Logs
from sealtrail.server.readiness import log_lag


class _LogState(Collector):
    """Tree size, seconds since the newest entry and the last verification, per log."""

    def __init__(self, logs: Logs, now: Callable[[], datetime],
                 verified: Mapping[str, Result]) -> None:
        self._logs = logs
        self._now = now
        self._verified = verified

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("sealtrail_tree_size", "Entries in the log", labels=["log"])
        age = GaugeMetricFamily("sealtrail_checkpoint_age_seconds",
                                "Seconds since the newest entry was committed", labels=["log"])
        for name in self._logs.names():
            try:
                log = self._logs.get(name)
                n = log.size
            except SealtrailError:
                continue  # a log that does not open has no gauge; /readyz says why
            size.add_metric([name], n)
            if n:
                received = log.entry(n - 1).event().get("received_at")
                if isinstance(received, str):
                    delta = self._now() - parse_time(received)
                    age.add_metric([name], delta.total_seconds())
        yield size
        yield age
        unsigned = GaugeMetricFamily(
            "sealtrail_integration_lag_entries", "Entries sequenced but not yet covered by "
            "the signed checkpoint (0 while integration runs in the sequencing transaction)",
            labels=["log"])
        unindexed = GaugeMetricFamily("sealtrail_index_lag_entries",
                                      "Entries the blind index has not caught up with",
                                      labels=["log"])
        store_s = GaugeMetricFamily("sealtrail_store_read_seconds",
                                    "One consistent read of the log's store (its health)",
                                    labels=["log"])
        up = GaugeMetricFamily("sealtrail_store_up", "1 when the log's store answers",
                               labels=["log"])
        lagging = {row["log"]: row for row in log_lag(self._logs)}
        for name in self._logs.names():
            row = lagging.get(name)
            up.add_metric([name], 0 if row is None else 1)
            if row is not None:
                unsigned.add_metric([name], row["unsigned"])
                unindexed.add_metric([name], row["unindexed"])
                store_s.add_metric([name], row["store_ms"] / 1000)
        yield unsigned
        yield unindexed
        yield store_s
        yield up
        ok = GaugeMetricFamily("sealtrail_verification_ok",
                               "1 when the last full verification passed, 0 when it failed",
                               labels=["log"])
        vsize = GaugeMetricFamily("sealtrail_verified_size",
                                  "Tree size the last passing verification covered",
                                  labels=["log"])
        vage = GaugeMetricFamily("sealtrail_verification_age_seconds",
                                 "Seconds since the last full verification", labels=["log"])
        for name, result in list(self._verified.items()):
            ok.add_metric([name], 1 if result.ok else 0)
            vsize.add_metric([name], result.size)
            vage.add_metric([name], (self._now() - result.at).total_seconds())
        yield ok
        yield vsize
        yield vage


class Metrics:
    """The service's metrics."""

    def __init__(self, logs: Logs, now: Callable[[], datetime],
                 verified: Mapping[str, Result] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter("sealtrail_ingest_events", "Events appended",
                                ["log"], registry=self.registry)
        self.ingest_seconds = Histogram(
            "sealtrail_ingest_seconds", "Time to make a batch durable, per request", ["log"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.rejected = Counter("sealtrail_rejected_requests",
                                "Requests refused, by reason", ["reason"],
                                registry=self.registry)
        self.proof_reads = Counter("sealtrail_proof_reads",
                                   "Checkpoint, proof and tile reads (not logged as events)",
                                   ["log", "kind"], registry=self.registry)
        self.registry.register(_LogState(logs, now, verified if verified is not None else {}))


class MonitorState(Collector):
    """Alerts by status and severity, the rule engine's lag, and each sink's deliveries."""

    def __init__(self, monitor: Monitor, dispatcher: Dispatcher | None) -> None:
        self._monitor = monitor
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[GaugeMetricFamily]:
        alerts = GaugeMetricFamily("sealtrail_alerts", "Alerts by log, status and severity",
                                   labels=["log", "status", "severity"])
        for (log, status, severity), n in self._monitor.store.counts().items():
            alerts.add_metric([log, status, severity], n)
        yield alerts
        lag = GaugeMetricFamily("sealtrail_monitor_lag_entries",
                                "Committed events the rule engine has not evaluated yet",
                                labels=["log"])
        for log, n in list(self._monitor.stats.lag.items()):
            lag.add_metric([log], n)
        yield lag
        errors = GaugeMetricFamily("sealtrail_monitor_errors",
                                   "Events or steps the monitor could not evaluate")
        errors.add_metric([], self._monitor.stats.errors)
        yield errors
        stats = self._monitor.publish_stats
        if stats is not None:  # published checkpoints (monitor in this process only)
            pubs = GaugeMetricFamily("sealtrail_checkpoint_publications",
                                     "Checkpoint publications by destination and outcome "
                                     "(since start)", labels=["destination", "state"])
            for name, n in stats.published.items():
                pubs.add_metric([name, "published"], n)
            for name, n in stats.failed.items():
                pubs.add_metric([name, "failed"], n)
            yield pubs
        if self._dispatcher is None:
            return
        delivered = GaugeMetricFamily("sealtrail_alert_deliveries",
                                      "Alert deliveries by sink and state (since start; "
                                      "pending from the outbox)", labels=["sink", "state"])
        failing = GaugeMetricFamily("sealtrail_alert_sink_consecutive_failures",
                                    "Failures in a row of each sink", labels=["sink"])
        for name, s in self._dispatcher.stats().items():
            delivered.add_metric([name, "delivered"], s.delivered)
            delivered.add_metric([name, "failed"], s.failed)
            delivered.add_metric([name, "pending"], s.pending)
            failing.add_metric([name], s.consecutive_failures)
        yield delivered
        yield failing
