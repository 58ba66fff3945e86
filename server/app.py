"""The HTTP API: `POST /plan`, health, readiness, version, metrics and the OpenAPI docs.

`create_app(policy_path)` builds the FastAPI app. Its lifespan opens the policy (a
missing or corrupt file fails the start with `PolicyLoadError`, naming the file), then
warms the planner up in a background thread; `/readyz` answers 503 until that is done
and `/plan` 503 while no policy is loaded. Planning is CPU work in plain `def` routes,
so it runs on the server's thread pool, never on the event loop.

Errors, mapped in one place (`_add_error_handlers`): a request pydantic refuses or one
the planner cannot satisfy (`PlanInputError`) is a 422 naming the field and the problem;
a body over `Settings.max_body_bytes` a 413; no policy a 503.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import Metrics, RequestMetrics
from server.planner import DEFAULT_SEARCH_BEAM, DEFAULT_SEARCH_ROLLOUTS, PlanInputError, Planner
from shared_schema import SCHEMA_VERSION
from shared_schema.messages import SUPPORTED_SCHEMA_VERSIONS, PlanRequest, PlanResponse
from training.onnx_policy import OnnxPolicy

log = logging.getLogger(__name__)

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.onnx"
# the shipped policy with a PPO run's, as one graph: greedy plans from `python -m server`
DEFAULT_GREEDY_POLICY = Path(__file__).parent / "policies" / "ensemble.onnx"
SETTINGS_ENV = "FACTORION_SERVER_SETTINGS"


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, in one place (`python -m server --help` sets them)."""

    policy_path: Path = DEFAULT_POLICY  # the exported ONNX policy
    greedy_policy_path: Path | None = None  # another for the greedy rollout (None: the same)
    max_body_bytes: int = 128 * 1024  # a 32x32 region with every tile listed as blocked is about 25 KiB
    search_rollouts: int = DEFAULT_SEARCH_ROLLOUTS  # sampled rollouts in search mode, besides the greedy one
    search_beam: int = DEFAULT_SEARCH_BEAM  # width of the beam search in search mode (0: none)
    onnx_threads: int | None = None  # onnxruntime intra-op threads per worker (None: its default)
    concurrent_plans: int | None = None  # plans run at once per worker, the rest wait in line (None: one per core)
    compare_expert: bool = True  # also run the expert on every request and report its score
    warm_up: bool = True  # plan a small task at start so the first request does not pay for loading kernels

    def to_env(self) -> dict[str, str]:
        """These settings as the environment `from_env` reads: how `python -m server`
        hands them to uvicorn's worker processes."""
        fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return {SETTINGS_ENV: json.dumps(fields)}

    @classmethod
    def from_env(cls) -> Settings:
        """The settings `to_env` wrote (defaults when it did not): the one place the
        server reads the environment."""
        fields = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
        for key in ("policy_path", "greedy_policy_path"):
            if fields.get(key) is not None:
                fields[key] = Path(fields[key])
        return cls(**fields)


@dataclass
class ServerState:
    """What the routes read: the planner once loaded, and whether it is warmed up."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    planner: Planner | None = None
    ready: bool = False
    error: str | None = None  # why warming up failed

    def warm_up(self) -> None:
        assert self.planner is not None
        try:
            self.planner.warm_up()
        except Exception as error:  # reported by /readyz; the process stays up to say so
            log.exception("warming up the planner failed")
            self.error = f"warming up the planner failed: {error}"
            return
        self.ready = True
        self.metrics.ready.set(1)
        log.info("planner ready: %s", self.planner.name)


class PolicyNotLoadedError(Exception):
    """A request that needs the policy arrived before it was loaded."""


# ---------------------------------------------------------------------------- middleware


class BodyLimit:
    """ASGI middleware answering 413 to a request body over `max_bytes`: at once when its
    Content-Length says so, else once the bytes read so far pass the limit (chunked
    bodies are read in full here, up to the limit, and replayed to the app)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, int(declared))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, send, None)
                return
            if not message.get("more_body", False):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, size: int | None) -> None:
        what = f"{size} bytes" if size is not None else "larger than that"
        detail = f"request body too large: at most {self.max_bytes} bytes are accepted, this one is {what}"
        response = JSONResponse({"detail": detail}, status_code=413)
        await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


# ---------------------------------------------------------------------------- the app


def _examples() -> dict[str, dict[str, Any]]:
    """Worked examples for the docs page (/docs), each a complete request."""
    route = PlanRequest.model_config.get("json_schema_extra", {})["examples"][0]  # type: ignore[index]
    return {
        "route": {
            "summary": "Belt a source to a sink past a blocked tile",
            "description": "Iron plates from (0, 0) to (5, 0) round the blocked tile (2, 0): an underground "
            "belt passes under it. Search mode, 2 s budget, seed 0.",
            "value": route,
        },
        "gears": {
            "summary": "Make gear wheels from iron plates",
            "description": "No source carries iron-gear-wheel, so the layout needs an assembling machine on the "
            "gear recipe, inserters in and out. The greedy policy, once.",
            "value": {
                "schema_version": SCHEMA_VERSION,
                "region": {"width": 9, "height": 5},
                "sources": [{"x": 0, "y": 2, "facing": "east", "item": "iron-plate"}],
                "sinks": [{"x": 8, "y": 2, "facing": "east", "item": "iron-gear-wheel"}],
                "options": {"mode": "greedy", "seed": 0},
            },
        },
        "split": {
            "summary": "Split one belt between two sinks",
            "value": {
                "schema_version": SCHEMA_VERSION,
                "region": {"width": 6, "height": 4},
                "sources": [{"x": 0, "y": 1, "facing": "east", "item": "copper-plate"}],
                "sinks": [
                    {"x": 5, "y": 0, "facing": "east", "item": "copper-plate"},
                    {"x": 5, "y": 3, "facing": "east", "item": "copper-plate"},
                ],
                "options": {"mode": "search", "time_budget_s": 1, "seed": 7},
            },
        },
    }


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.factorion
    return state


def get_planner(state: Annotated[ServerState, Depends(get_state)]) -> Planner:
    if state.planner is None:
        raise PolicyNotLoadedError()
    return state.planner


StateDep = Annotated[ServerState, Depends(get_state)]
PlannerDep = Annotated[Planner, Depends(get_planner)]


def _add_error_handlers(app: FastAPI) -> None:
    """Typed errors to status codes, the one place that maps them."""

    @app.exception_handler(PlanInputError)
    async def unsatisfiable(_: Request, error: PlanInputError) -> JSONResponse:
        detail = [{"type": "value_error", "loc": ["body", *error.field], "msg": str(error)}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(PolicyNotLoadedError)
    async def not_loaded(request: Request, _: PolicyNotLoadedError) -> JSONResponse:
        state = get_state(request)
        detail = f"the policy ({state.settings.policy_path}) is not loaded; try again once /readyz answers 200"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


def create_app(
    policy_path: Path | str | None = None, settings: Settings | None = None, *, load: bool = True
) -> FastAPI:
    """The app serving `policy_path` (default: `settings.policy_path`). `load=False`
    starts it without a policy (every /plan a 503), for tests and health checks."""
    settings = settings or Settings()
    if policy_path is not None:
        settings = replace(settings, policy_path=Path(policy_path))
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load:
            state.planner = Planner(  # PolicyLoadError here fails the start, naming the file
                settings.policy_path,
                threads=settings.onnx_threads,
                search_rollouts=settings.search_rollouts,
                search_beam=settings.search_beam,
                compare_expert=settings.compare_expert,
                greedy_path=settings.greedy_policy_path,
                concurrent_plans=settings.concurrent_plans,
            )
            log.info("loaded policy %s from %s", state.planner.name, settings.policy_path)
            if state.planner.greedy_policy is not state.planner.policy:
                log.info("greedy rollouts by %s from %s", state.planner.greedy_name, state.planner.greedy_path)
            if settings.warm_up:
                threading.Thread(target=state.warm_up, name="warm-up", daemon=True).start()
            else:
                state.ready = True
                state.metrics.ready.set(1)
        yield

    app = FastAPI(
        title="Factorion",
        version=_version(),
        summary="Designs small Factorio 2.0 factories: POST a region with sources and sinks, get a layout.",
        lifespan=lifespan,
    )
    app.state.factorion = state
    _add_error_handlers(app)

    @app.post(
        "/plan",
        response_model=PlanResponse,
        responses={
            413: {"description": "The request body is larger than the server accepts."},
            422: {"description": "A field is invalid, or the sinks cannot be fed from the sources; names which."},
            503: {"description": "The policy is not loaded yet."},
        },
    )
    def plan(
        body: Annotated[PlanRequest, Body(openapi_examples=_examples())],
        planner: PlannerDep,
        state: StateDep,
        request: Request,
    ) -> PlanResponse:
        """Fill the region so that what the sources supply reaches the sinks, at the best
        throughput found; every layout is verified in the mimic. The same request and
        seed give the same answer (in `search` mode: unless the time budget cut the
        search short). The time budget runs from the request's arrival, so time spent
        waiting for a free planning slot counts."""
        result = planner.plan(body, arrived=getattr(request.state, "arrived", None))
        state.metrics.observe_plan(body.options.mode, result)
        response = result.response
        log.info(
            "plan %dx%d %s: score %.3f (expert %s) in %.0f ms",
            body.region.width, body.region.height, body.options.mode, response.score,
            "-" if response.expert_score is None else f"{response.expert_score:.3f}", response.timings_ms["total"],
        )  # fmt: skip
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up (says nothing about the policy: see /readyz)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "Not ready: the policy is loading or warming up."}})
    def readyz(state: StateDep) -> JSONResponse:
        """200 once the policy is loaded and the planner warmed up, else 503 saying why."""
        if state.ready:
            return JSONResponse({"status": "ready", "policy": state.planner.name if state.planner else None})
        reason = state.error or ("warming up" if state.planner is not None else "the policy is not loaded")
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    @app.get("/version")
    def version(state: StateDep) -> dict[str, Any]:
        """Server version, message schema versions spoken, and the policies being served:
        `policy` for search, `greedy_policy` for the greedy rollout (the same unless the
        server was given another)."""
        planner = state.planner
        settings = state.settings

        def describe(policy: OnnxPolicy | None, name: str | None, path: Path) -> dict[str, Any]:
            meta = policy.metadata if policy else {}
            return {
                "name": name,
                "path": str(path),
                "grid_size": meta.get("grid_size"),
                "source_checkpoint": meta.get("source_checkpoint"),
                "model_config": meta.get("model_config"),
                "providers": policy.session.get_providers() if policy else None,
            }

        return {
            "name": "factorion",
            "version": _version(),
            "schema_versions": list(SUPPORTED_SCHEMA_VERSIONS),
            "policy": describe(
                planner.policy if planner else None, planner.name if planner else None, settings.policy_path
            ),
            "greedy_policy": describe(
                planner.greedy_policy if planner else None,
                planner.greedy_name if planner else None,
                settings.greedy_policy_path or settings.policy_path,
            ),
        }

    @app.get("/metrics", response_class=Response)
    def metrics_text(state: StateDep) -> Response:
        """Prometheus text format (metric definitions: server/metrics.py)."""
        text, content_type = state.metrics.exposition()
        return Response(text, media_type=content_type)

    paths = [getattr(route, "path", "") for route in app.routes]
    # added last runs first: counting sees the 413s the body limit gives
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=state.metrics, paths=paths)
    return app


def app_from_env() -> FastAPI:
    """The app with `Settings.from_env()`: uvicorn's factory in each worker process."""
    return create_app(settings=Settings.from_env())


def _version() -> str:
    try:
        return metadata.version("factorion")
    except metadata.PackageNotFoundError:
        return "unknown"
