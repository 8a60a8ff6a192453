"""The mock's metrics, in Prometheus' text format through prometheus-client (``GET /metrics``).

One registry per app (tests build many apps; none touches prometheus-client's global registry):

- ``mock_requests_total{operation, status}``: answers per spec operation and HTTP status;
- ``mock_request_duration_seconds{operation}``: real time from the request to the last byte sent
  (a stream's whole length included), in s;
- ``mock_simulated_latency_seconds{operation}``: the simulated GPU latency drawn for an answer
  (``sim/latency.py``: queue + first + generation; for a stream, queue + first token), in s;
- ``mock_gpu_queue_depth{model}`` and ``mock_gpu_busy_slots{model}``: the GPU pools, read when scraped;
- ``mock_rate_limit_rejections_total{operation, dimension}``: 429s of the rate limits (requests, tokens);
- ``mock_credits_charged_total{operation}``: credits the ledger debited (004's credits API);
- ``mock_active_streams{operation}``: SSE answers being sent.

The request path pays for pre-bound children only, and cheap ones: each operation's are bound once
(:class:`OperationMetrics`) and are plain counters (an int, a list of histogram buckets found by
``bisect``), updated from the event loop alone and so without locks; nothing looks a label up per
request. prometheus-client renders them when scraped (:class:`MockCollector`), in its own format.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from mock_server.sim.latency import GpuPool

#: Content-Type of the text exposition format prometheus-client renders.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Histogram buckets in s: from a fast refusal (1 ms) to a long generation (2 min).
BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: The rate-limit dimensions counted (``sim/ratelimit.py``'s Limit.dimension).
DIMENSIONS = ("requests", "tokens")


class Histogram:
    """One histogram child: counts per bucket of :data:`BUCKETS_S` (the last one +Inf) and the sum, in s."""

    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation of ``seconds`` (s) in the first bucket whose bound is at least it."""
        self.counts[bisect_left(BUCKETS_S, seconds)] += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``[(le, observations at most le), ..., ("+Inf", all)]``, as Prometheus reports buckets."""
        out, total = [], 0
        for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class OperationMetrics:
    """The children of one operation's metrics, bound at start-up; the methods are the hot path."""

    __slots__ = ("credits", "duration", "operation_id", "rejections", "simulated", "statuses", "streams")

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self.statuses: dict[int, int] = {}
        self.duration = Histogram()
        self.simulated = Histogram()
        self.rejections = dict.fromkeys(DIMENSIONS, 0)
        self.credits = 0
        self.streams = 0

    def answered(self, status: int, seconds: float) -> None:
        """Count one answer of ``status`` that took ``seconds`` (s) of real time. (The pipeline,
        ``app.OperationEndpoint``, counts its answers the same way in place; ``tests/test_fast_paths.py``
        compares the two.)"""
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.duration.observe(seconds)

    def rejected(self, dimension: str) -> None:
        """Count one rate-limit refusal on ``dimension`` (requests or tokens)."""
        self.rejections[dimension] = self.rejections.get(dimension, 0) + 1

    def charged(self, credits: int) -> None:
        """Count ``credits`` debited by the ledger."""
        self.credits += credits


class MockCollector(Collector):
    """The families of the module docstring, built from every :class:`OperationMetrics` when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per metric, one sample per operation (and status, dimension or model)."""
        requests = CounterMetricFamily("mock_requests", "Answers per spec operation and HTTP status.",
                                       labels=["operation", "status"])
        duration = HistogramMetricFamily("mock_request_duration_seconds", "Real time from request to last byte, "
                                         "in s.", labels=["operation"])
        simulated = HistogramMetricFamily("mock_simulated_latency_seconds", "Simulated GPU latency drawn for an "
                                          "answer (streams: to the first token), in s.", labels=["operation"])
        rejections = CounterMetricFamily("mock_rate_limit_rejections", "Rate-limit refusals (429) per operation "
                                         "and dimension.", labels=["operation", "dimension"])
        credits = CounterMetricFamily("mock_credits_charged", "Credits debited by the ledger, per operation.",
                                      labels=["operation"])
        streams = GaugeMetricFamily("mock_active_streams", "SSE answers being sent now, per operation.",
                                    labels=["operation"])
        for name, op in self.metrics.operations.items():
            for status, count in sorted(op.statuses.items()):
                requests.add_metric([name, str(status)], count)
            for family, histogram in ((duration, op.duration), (simulated, op.simulated)):
                family.add_metric([name], histogram.cumulative(), histogram.sum_s)
            for dimension, count in op.rejections.items():
                rejections.add_metric([name, dimension], count)
            credits.add_metric([name], op.credits)
            streams.add_metric([name], op.streams)
        yield from (requests, duration, simulated, rejections, credits, streams)
        depth = GaugeMetricFamily("mock_gpu_queue_depth", "Generations waiting for a GPU slot, per model.",
                                  labels=["model"])
        busy = GaugeMetricFamily("mock_gpu_busy_slots", "GPU slots generating now, per model.", labels=["model"])
        for model, (in_use, waiting) in sorted(self.metrics.pool.usage().items()):
            busy.add_metric([model], in_use)
            depth.add_metric([model], waiting)
        yield depth
        yield busy


class Metrics:
    """Every metric of the module docstring in one registry; :meth:`operation` binds an operation's."""

    def __init__(self, pool: GpuPool) -> None:
        self.pool = pool
        self.operations: dict[str, OperationMetrics] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MockCollector(self))

    def operation(self, operation_id: str) -> OperationMetrics:
        """The bound children of ``operation_id`` (the same object for every caller)."""
        found = self.operations.get(operation_id)
        if found is None:
            found = self.operations[operation_id] = OperationMetrics(operation_id)
        return found

    def render(self) -> bytes:
        """Every metric in Prometheus' text exposition format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
