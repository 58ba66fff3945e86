"""The server's Prometheus metrics, served as text at `GET /metrics`.

Every metric is defined here, one line each (the names are fixed; dashboards read them):

- `factorion_requests_total{path, method, status}`: HTTP requests answered, by route
  path ("other" for paths the app does not serve) and status code (499: the client left
  before any answer).
- `factorion_request_seconds{path}`: wall-clock time from the request's arrival to the
  end of its answer, s (histogram).
- `factorion_plan_score{mode}`: the score of every plan answered, in [0, 1] (histogram).
- `factorion_plan_expert_score{mode}`: the expert's score on the same requests (histogram).
- `factorion_plan_seconds{mode}`: planning time of every plan answered, s (histogram).
- `factorion_plan_queue_seconds{mode}`: how long each plan answered waited for a free slot
  (`--concurrent-plans`) before planning began, s (histogram; part of `plan_seconds`).
- `factorion_plan_candidates{mode}`: layouts scored in the mimic per plan (histogram).
- `factorion_plan_budget_hits_total{mode}`: plans whose search the time budget cut short.
- `factorion_policy_ready`: 1 once the policy is loaded and warmed up, else 0.

Each app has its own registry, so tests can build many apps in one process. Under
`--workers N` every worker process counts for itself, and a scrape reaches one of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.planner import Plan

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SCORE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.999, 1.0)
CANDIDATE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "factorion_requests", "HTTP requests answered", ("path", "method", "status"), registry=r
        )
        self.request_seconds = Histogram(
            "factorion_request_seconds", "HTTP request latency, s", ("path",), buckets=LATENCY_BUCKETS, registry=r
        )
        self.plan_score = Histogram(
            "factorion_plan_score", "Score of each plan answered", ("mode",), buckets=SCORE_BUCKETS, registry=r
        )
        self.expert_score = Histogram(
            "factorion_plan_expert_score", "The expert's score on the same requests", ("mode",),
            buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.plan_seconds = Histogram(
            "factorion_plan_seconds", "Planning time per plan, s", ("mode",), buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_seconds = Histogram(
            "factorion_plan_queue_seconds", "Wait for a free planning slot per plan, s", ("mode",),
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.candidates = Histogram(
            "factorion_plan_candidates", "Layouts scored per plan", ("mode",), buckets=CANDIDATE_BUCKETS, registry=r
        )
        self.budget_hits = Counter(
            "factorion_plan_budget_hits", "Plans whose search the time budget cut short", ("mode",), registry=r
        )
        self.ready = Gauge("factorion_policy_ready", "1 once the policy is loaded and warmed up", registry=r)

    def observe_plan(self, mode: str, plan: Plan) -> None:
        response = plan.response
        self.plan_score.labels(mode).observe(response.score)
        if response.expert_score is not None:
            self.expert_score.labels(mode).observe(response.expert_score)
        self.plan_seconds.labels(mode).observe(response.timings_ms.get("total", 0.0) / 1000)
        self.queue_seconds.labels(mode).observe(response.timings_ms.get("queue", 0.0) / 1000)
        self.candidates.labels(mode).observe(plan.candidates)
        if plan.budget_hit:
            self.budget_hits.labels(mode).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware counting every HTTP request and timing it, by path and status. It
    also stamps the request's arrival (`request.state.arrived`, a `time.perf_counter()`
    reading), from which a plan's time budget runs."""

    def __init__(self, app: ASGIApp, metrics: Metrics, paths: Iterable[str]) -> None:
        self.app, self.metrics, self.paths = app, metrics, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope.setdefault("state", {})["arrived"] = start
        status = 499  # no answer at all: the client went away first (nginx's code for it)

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        except Exception:
            status = 500
            raise
        finally:
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(path).observe(time.perf_counter() - start)
