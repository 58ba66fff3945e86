"""The HTTP API (server/app.py) through FastAPI's TestClient, and `python -m server`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest

from server.app import BodyLimit, Settings, create_app
from server.bench import free_port
from server.planner import Planner, PolicyLoadError
from shared_schema.blueprint import blueprint_json
from shared_schema.messages import PlanRequest, PlanResponse
from tests.test_planner import assert_verified

with warnings.catch_warnings():  # starlette's TestClient asks for httpx2 now; httpx 0.28 is what serve pins
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).parents[1]
ROUTE: dict[str, Any] = {
    "schema_version": 1,
    "region": {"width": 6, "height": 3},
    "sources": [{"x": 0, "y": 1, "facing": "east", "item": "iron-plate"}],
    "sinks": [{"x": 5, "y": 1, "facing": "east", "item": "iron-plate"}],
    "blocked": [{"x": 2, "y": 1}],
}
GEARS: dict[str, Any] = {
    "schema_version": 1,
    "region": {"width": 9, "height": 5},
    "sources": [{"x": 0, "y": 2, "facing": "east", "item": "iron-plate"}],
    "sinks": [{"x": 8, "y": 2, "facing": "east", "item": "iron-gear-wheel"}],
}


@pytest.fixture(scope="module")
def client(tiny_policy: Path) -> Iterator[TestClient]:
    app = create_app(tiny_policy, Settings(search_rollouts=8, warm_up=False, max_body_bytes=16 * 1024))
    with TestClient(app) as test_client:
        yield test_client


def with_options(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {**body, "options": options}


def error_of(response: httpx.Response) -> tuple[list[Any], str]:
    """The first problem of a 422: where (loc) and what (msg)."""
    assert response.status_code == 422, response.text
    first = response.json()["detail"][0]
    return first["loc"], first["msg"]


# ---------------------------------------------------------------------------- /plan


@pytest.mark.parametrize("mode", ["greedy", "search", "expert"])
@pytest.mark.parametrize("body", [ROUTE, GEARS], ids=["route", "gears"])
def test_plan_in_every_mode(client: TestClient, body: dict[str, Any], mode: str) -> None:
    response = client.post("/plan", json=with_options(body, mode=mode, seed=3))
    assert response.status_code == 200, response.text
    plan = PlanResponse.model_validate(response.json())
    request = PlanRequest.model_validate(with_options(body, mode=mode, seed=3))
    assert_verified(request, plan)  # legal placements, blueprint agrees, rates are the mimic's
    decoded = blueprint_json(plan.blueprint)["blueprint"]
    assert len(decoded.get("entities", [])) == len(plan.placements)
    assert plan.expert_score is not None and plan.timings_ms["total"] > 0
    if mode == "expert":
        assert plan.policy == "expert" and plan.score == plan.expert_score
        # the route is solved; the gears reach 0.6 of the bound (one arm of 1.2 plates/s feeds the machine)
        assert plan.score == pytest.approx(1.0 if body is ROUTE else 0.6)


def test_same_request_and_seed_same_answer(client: TestClient) -> None:
    body = with_options(GEARS, mode="search", seed=11, time_budget_s=60)
    first, second = (client.post("/plan", json=body).json() for _ in range(2))
    first.pop("timings_ms"), second.pop("timings_ms")
    assert first == second


def test_the_time_budget_runs_from_the_requests_arrival(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    planner: Planner = client.app.state.factorion.planner  # type: ignore[attr-defined]
    seen: list[float | None] = []
    plan = planner.plan

    def spy(request: PlanRequest, arrived: float | None = None) -> Any:
        seen.append(arrived)
        return plan(request, arrived)

    monkeypatch.setattr(planner, "plan", spy)
    before = time.perf_counter()
    answer = client.post("/plan", json=with_options(ROUTE, mode="search", seed=1)).json()
    assert seen and seen[0] is not None and before <= seen[0] <= time.perf_counter()
    assert answer["timings_ms"]["queue"] >= 0  # the wait for a free slot, reported


def test_the_docs_carry_a_worked_example(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/plan"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert {"route", "gears", "split"} <= set(examples)
    for example in examples.values():  # every worked example is a request the server answers
        assert client.post("/plan", json=with_options(example["value"], mode="greedy")).status_code == 200


# ---------------------------------------------------------------------------- bad input


def test_unknown_item(client: TestClient) -> None:
    body = {**ROUTE, "sinks": [{"x": 5, "y": 1, "facing": "east", "item": "unobtainium"}]}
    loc, msg = error_of(client.post("/plan", json=body))
    assert loc == ["body", "sinks", 0, "item"] and "unknown item 'unobtainium'" in msg


def test_an_item_no_machine_makes(client: TestClient) -> None:
    body = {**ROUTE, "sinks": [{"x": 5, "y": 1, "facing": "east", "item": "copper-plate"}]}
    loc, msg = error_of(client.post("/plan", json=body))
    assert loc == ["body", "sinks", 0, "item"]
    assert "no source carries 'copper-plate' and no assembling-machine-1 recipe makes it" in msg


def test_a_sink_the_sources_cannot_make(client: TestClient) -> None:
    body = {**ROUTE, "sinks": [{"x": 5, "y": 1, "facing": "east", "item": "electronic-circuit"}]}
    loc, msg = error_of(client.post("/plan", json=body))
    assert loc == ["body", "sinks", 0, "item"]
    assert "'electronic-circuit' cannot be made from the sources" in msg and "needs 'copper-plate'" in msg


def test_a_marker_off_the_region(client: TestClient) -> None:
    body = {**ROUTE, "sinks": [{"x": 6, "y": 1, "facing": "east", "item": "iron-plate"}]}
    _, msg = error_of(client.post("/plan", json=body))
    assert "sinks[0] at (6, 1) is off the 6x3 region" in msg


def test_markers_on_top_of_each_other(client: TestClient) -> None:
    body = {**ROUTE, "sinks": [{"x": 0, "y": 1, "facing": "east", "item": "iron-plate"}]}
    _, msg = error_of(client.post("/plan", json=body))
    assert "sinks[0] at (0, 1) is on top of sources[0]" in msg
    body = {**ROUTE, "blocked": [{"x": 5, "y": 1}]}
    _, msg = error_of(client.post("/plan", json=body))
    assert "sinks[0] at (5, 1) is on a blocked tile" in msg


def test_a_region_too_large(client: TestClient) -> None:
    loc, msg = error_of(client.post("/plan", json={**ROUTE, "region": {"width": 33, "height": 3}}))
    assert loc == ["body", "region", "width"] and "32" in msg


def test_too_many_sinks(client: TestClient) -> None:
    sinks = [{"x": x, "y": 2, "facing": "south", "item": "iron-plate"} for x in range(17)]
    body = {**ROUTE, "region": {"width": 17, "height": 3}, "sinks": sinks}
    loc, msg = error_of(client.post("/plan", json=body))
    assert loc == ["body", "sinks"] and "at most 16 sinks" in msg


def test_a_schema_version_not_spoken(client: TestClient) -> None:
    _, msg = error_of(client.post("/plan", json={**ROUTE, "schema_version": 99}))
    assert "schema_version 99 is not spoken here" in msg


def test_a_body_too_large(client: TestClient) -> None:
    blocked = [{"x": 3, "y": 0}] * 2000  # valid JSON, but about 30 KiB: over this app's 16 KiB
    response = client.post("/plan", json={**ROUTE, "blocked": blocked})
    assert response.status_code == 413
    assert "at most 16384 bytes" in response.json()["detail"]


async def _asgi_call(app: Any, chunks: list[bytes]) -> list[dict[str, Any]]:
    """Send `chunks` as a body without Content-Length through an ASGI app; its messages."""
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/plan", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return sent


def test_a_chunked_body_too_large_is_refused_without_content_length() -> None:
    import asyncio

    reached: list[bytes] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = BodyLimit(echo, max_bytes=10)
    sent = asyncio.run(_asgi_call(limited, [b"12345", b"67890", b"1"]))
    assert sent[0]["status"] == 413 and not reached
    sent = asyncio.run(_asgi_call(limited, [b"12345", b"67890"]))
    assert sent[0]["status"] == 200 and reached == [b"1234567890"]  # replayed whole


# ---------------------------------------------------------------------------- health, metrics


def test_health_version_and_metrics(client: TestClient, tiny_policy: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["policy"].startswith("tiny.onnx@")
    version = client.get("/version").json()
    assert version["schema_versions"] == [1]
    assert version["policy"]["path"] == str(tiny_policy) and version["policy"]["grid_size"] == 11
    client.post("/plan", json=with_options(ROUTE, mode="greedy"))
    client.post("/plan", json={**ROUTE, "region": {"width": 40, "height": 3}})
    client.get("/no-such-page")
    text = client.get("/metrics").text
    assert 'factorion_requests_total{method="POST",path="/plan",status="200"}' in text
    assert 'factorion_requests_total{method="POST",path="/plan",status="422"}' in text
    assert 'factorion_requests_total{method="GET",path="other",status="404"}' in text
    assert 'factorion_request_seconds_count{path="/plan"}' in text
    assert 'factorion_plan_score_count{mode="greedy"}' in text
    assert 'factorion_plan_candidates_count{mode="greedy"}' in text
    assert 'factorion_plan_queue_seconds_count{mode="greedy"}' in text
    assert "factorion_policy_ready 1.0" in text


def test_no_policy_loaded_is_503(tiny_policy: Path) -> None:
    with TestClient(create_app(tiny_policy, load=False)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "the policy is not loaded"
        response = client.post("/plan", json=ROUTE)
        assert response.status_code == 503 and "is not loaded" in response.json()["detail"]
        assert response.headers["retry-after"] == "5"
        assert client.get("/version").json()["policy"]["name"] is None


def test_ready_once_warmed_up(tiny_policy: Path) -> None:
    with TestClient(create_app(tiny_policy, Settings(search_rollouts=2))) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/readyz").status_code == 200
        assert "factorion_policy_ready 1.0" in client.get("/metrics").text


def test_a_missing_policy_fails_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "gone.onnx"
    with pytest.raises(PolicyLoadError, match=str(missing)), TestClient(create_app(missing)):
        pass


def test_settings_travel_to_workers_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        policy_path=Path("/x/p.onnx"),
        search_rollouts=5,
        search_beam=2,
        onnx_threads=2,
        concurrent_plans=3,
        compare_expert=False,
    )
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == settings


# ---------------------------------------------------------------------------- python -m server


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_help_documents_the_options() -> None:
    done = _server("--help")
    assert done.returncode == 0
    for option in ("--host", "--port", "--policy", "--workers", "--threads", "--concurrent-plans"):
        assert option in done.stdout
    assert "127.0.0.1" in done.stdout and "8000" in done.stdout and "default.onnx" in done.stdout


def test_a_missing_or_corrupt_policy_fails_the_start_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    done = _server("--policy", str(missing))
    assert done.returncode == 2 and f"policy file {missing} does not exist" in done.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_text("not a model")
    done = _server("--policy", str(corrupt))
    assert done.returncode == 2 and f"policy file {corrupt} is not a readable ONNX model" in done.stderr


def test_the_server_imports_no_torch() -> None:
    code = "import sys, server.app, server.planner, server.__main__; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"


def test_a_real_server_answers(tiny_policy: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "--policy", str(tiny_policy), "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        response = httpx.post(f"{url}/plan", json=with_options(ROUTE, mode="expert"), timeout=60)
        assert response.status_code == 200 and response.json()["score"] == pytest.approx(1.0)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_ensemble_export_is_served_like_one_policy(tmp_path: Path) -> None:
    import torch

    from training.ensemble import Ensemble
    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(5)
    members = [Policy(ModelConfig(width=16, conv_blocks=1)).eval() for _ in range(2)]
    export(Ensemble(members), tmp_path / "ensemble.onnx", 11, source="a.pt, b.pt")
    app = create_app(tmp_path / "ensemble.onnx", Settings(search_rollouts=4, warm_up=False))
    with TestClient(app) as client:
        version = client.get("/version").json()["policy"]
        assert [config["width"] for config in version["model_config"]] == [16, 16]
        for mode in ("greedy", "search"):
            body = with_options(ROUTE, mode=mode, seed=3, time_budget_s=30)
            first, again = client.post("/plan", json=body), client.post("/plan", json=body)
            assert first.status_code == 200, first.text
            assert first.json()["placements"] == again.json()["placements"]


def test_the_default_server_plans_greedily_with_the_shipped_ensemble(tiny_policy: Path) -> None:
    from server.__main__ import parser, settings_from
    from server.app import DEFAULT_GREEDY_POLICY, DEFAULT_POLICY

    default = settings_from(parser().parse_args([]))
    assert (default.policy_path, default.greedy_policy_path) == (DEFAULT_POLICY, DEFAULT_GREEDY_POLICY)
    assert DEFAULT_GREEDY_POLICY.is_file()
    relative = settings_from(parser().parse_args(["--policy", "server/policies/default.onnx"]))  # as compose says it
    assert relative.greedy_policy_path == DEFAULT_GREEDY_POLICY
    own = settings_from(parser().parse_args(["--policy", str(tiny_policy)]))
    assert own.greedy_policy_path is None  # another policy plans greedily with itself unless told
    told = settings_from(parser().parse_args(["--policy", str(tiny_policy), "--greedy-policy", str(tiny_policy)]))
    assert told.greedy_policy_path == tiny_policy
    with patch.dict(os.environ, told.to_env()):
        assert Settings.from_env() == told  # how worker processes get them
    assert default.concurrent_plans is None  # the planner's own default: one per core
    lined_up = settings_from(parser().parse_args(["--policy", str(tiny_policy), "--concurrent-plans", "3"]))
    with TestClient(create_app(settings=replace(lined_up, warm_up=False))) as client:
        assert client.app.state.factorion.planner.concurrent_plans == 3  # type: ignore[attr-defined]

    with TestClient(create_app(DEFAULT_POLICY, replace(default, search_rollouts=2, warm_up=False))) as client:
        version = client.get("/version").json()
        assert version["policy"]["name"].startswith("default.onnx@")
        assert version["greedy_policy"]["name"].startswith("ensemble.onnx@")
        assert len(version["greedy_policy"]["model_config"]) == 2
        answer = client.post("/plan", json=with_options(ROUTE, mode="greedy"))
        assert answer.status_code == 200 and answer.json()["policy"].startswith("ensemble.onnx@")
