"""End to end: the real mod's Lua behind a real RCON socket, the real bridge, and the
planner on an exported policy. A player marks a region, a source and a sink, and asks
for a plan; the ghosts that appear are exactly the plan's placements."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from server.bridge import Bridge, BridgeConfig
from server.planner import Planner
from shared_schema.messages import PlanRequest, PlanResponse
from tests.fake_factorio import FakeFactorio
from tests.fake_rcon import FakeRconServer

PASSWORD = "e2e-secret"


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Planner:
    """A small untrained policy, exported as the server would receive it."""
    torch = pytest.importorskip("torch")
    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("policy") / "tiny.onnx"
    export(Policy(ModelConfig(width=16, conv_blocks=1)).eval(), path, 11, source="tiny.pt")
    return Planner(path, threads=1, search_rollouts=4, compare_expert=False)


class PlanningServer:
    """POST /plan answered by the planner, keeping every response for the test."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.responses: list[PlanResponse] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/plan"
        response = self.planner.plan(PlanRequest.model_validate_json(request.content)).response
        self.responses.append(response)
        return httpx.Response(200, content=response.model_dump_json())


@pytest.fixture
def game() -> Iterator[tuple[FakeFactorio, FakeRconServer]]:
    factorio = FakeFactorio(players=1)
    with FakeRconServer(PASSWORD, factorio.command) as server:
        yield factorio, server


def run_bridge(server: FakeRconServer, planning: PlanningServer) -> tuple[Bridge, threading.Event, threading.Thread]:
    config = BridgeConfig(
        rcon_port=server.port, rcon_password=PASSWORD, server_url="http://planner.test", poll_interval_s=0.01
    )
    bridge = Bridge(config, http_transport=httpx.MockTransport(planning))
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    return bridge, stop, thread


@pytest.mark.parametrize("mode", ["expert", "greedy"])
def test_a_player_asks_for_a_plan_and_gets_its_ghosts(
    game: tuple[FakeFactorio, FakeRconServer], planner: Planner, mode: str
) -> None:
    factorio, server = game
    factorio.fake.players[1].mod_settings["factorion-plan-mode"].value = mode
    factorio.fake.players[1].mod_settings["factorion-time-budget"].value = 5
    factorio.create("stone-furnace", 6, 13)  # something already in the region: tiles (5..6, 12..13)
    factorio.select_area(1, "factorion-region", -3, 10, 5, 14)  # 8x4 at (-3, 10)
    factorio.click(1, -3, 10, "factorion-source")  # east, iron-plate: the defaults
    factorio.click(1, 4, 10, "factorion-sink")
    factorio.raise_event("factorion-request-plan", player_index=1)

    planning = PlanningServer(planner)
    bridge, stop, thread = run_bridge(server, planning)
    try:
        deadline = time.monotonic() + 60
        while not bridge.delivered:
            assert thread.is_alive() and time.monotonic() < deadline, "the bridge did not deliver the job"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
        bridge.close()
    factorio.run_until_idle()

    (response,) = planning.responses
    expected = {
        (p.name, (p.position.x - 3, p.position.y + 10), p.direction, p.type, p.recipe) for p in response.placements
    }
    ghosts = [e for e in factorio.entities() if e["ghost"]]
    assert {(e["name"], e["position"], e["direction"], e["type"], e["recipe"]) for e in ghosts} == expected
    assert len(ghosts) == len(response.placements)
    assert [e["name"] for e in factorio.entities() if not e["ghost"]] == ["stone-furnace"]
    told = factorio.printed(1)
    assert any(line.startswith("[Factorion] Planning a 8x4 region") for line in told)
    assert f"placed {len(response.placements)} ghosts" in told[-1]
    assert "Sinks: iron-plate" in told[-1]
    assert not server.errors
    if mode == "expert":
        assert response.placements and response.score > 0
