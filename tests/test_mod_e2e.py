"""End to end: a fake game process (`tests.fake_game_process`: the real mod's Lua behind
a real RCON socket, ticking on its own), the real bridge, and the planning server
(`server.app` under uvicorn on 127.0.0.1) on an exported policy. A player marks a
region, a source and a sink, and asks for a plan; the ghosts that appear are exactly the
plan's placements, and the player is told."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from factorio_rcon import RCONClient

from server.app import Settings, create_app
from server.bench import free_port
from server.bridge import Bridge, BridgeConfig
from shared_schema.messages import PlanResponse

PASSWORD = "e2e-secret"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The planning server on a free port of 127.0.0.1, serving a small untrained policy
    exported as the server would receive it."""
    torch = pytest.importorskip("torch")
    import uvicorn

    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("policy") / "tiny.onnx"
    export(Policy(ModelConfig(width=16, conv_blocks=1)).eval(), path, 11, source="tiny.pt")
    settings = Settings(policy_path=path, search_rollouts=4, compare_expert=False, onnx_threads=1, warm_up=False)
    port = free_port()
    config = uvicorn.Config(create_app(settings=settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the planning server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Recording(httpx.HTTPTransport):
    """The bridge's HTTP, sent for real, keeping every /plan answer for the test."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[PlanResponse] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path == "/plan":
            response.read()
            assert response.status_code == 200, response.text
            self.responses.append(PlanResponse.model_validate_json(response.content))
        return response


class Game:
    """The fake game process, played through its RCON test command."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_game_process", "--password", PASSWORD],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("port "), f"the fake game did not start: {line!r}"
        self.port = int(line.split()[1])
        self.rcon = RCONClient("127.0.0.1", self.port, PASSWORD, timeout=30)

    def do(self, action: str, **fields: Any) -> Any:
        reply = json.loads(self.rcon.send_command("/fake-test " + json.dumps({"do": action, **fields})) or "{}")
        assert reply.get("ok"), reply
        return reply["value"]

    def close(self) -> None:
        self.rcon.close()
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def game() -> Iterator[Game]:
    game = Game()
    yield game
    game.close()


def run_bridge(port: int, url: str, http: Recording) -> tuple[Bridge, threading.Event, threading.Thread]:
    config = BridgeConfig(rcon_port=port, rcon_password=PASSWORD, server_url=url, poll_interval_s=0.01)
    bridge = Bridge(config, http_transport=http)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    return bridge, stop, thread


@pytest.mark.parametrize(
    ("mode", "sink_item"),
    [("expert", "iron-plate"), ("greedy", "iron-plate"), ("expert", "iron-gear-wheel")],
    ids=["expert-route", "greedy-route", "expert-gears"],
)
def test_a_player_asks_for_a_plan_and_gets_its_ghosts(game: Game, server_url: str, mode: str, sink_item: str) -> None:
    game.do("setting", name="factorion-plan-mode", value=mode)
    game.do("setting", name="factorion-time-budget", value=5)
    game.do("create", name="stone-furnace", x=6, y=13)  # something already in the region: tiles (5..6, 12..13)
    game.do("create", name="iron-ore", x=-1.5, y=13.5)  # ore, which does not block
    if sink_item != "iron-plate":
        game.do("choose_item", kind="sink", item=sink_item)
    game.do("select_area", item="factorion-region", area=[-3, 10, 7, 14])  # 10x4 at (-3, 10)
    game.do("click", x=-3, y=10, item="factorion-source")  # east, iron-plate: the defaults
    game.do("click", x=6, y=10, item="factorion-sink")
    game.do("request_plan")

    http = Recording()
    bridge, stop, thread = run_bridge(game.port, server_url, http)
    try:
        deadline = time.monotonic() + 60
        while not any("placed" in line for line in game.do("printed")):  # the game ticks by itself
            assert thread.is_alive() and time.monotonic() < deadline, "the plan was not placed"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
        bridge.close()

    (response,) = http.responses
    expected = [
        (p.name, (p.position.x - 3, p.position.y + 10), p.direction, p.type, p.recipe) for p in response.placements
    ]
    entities = game.do("entities")
    ghosts = [e for e in entities if e["ghost"]]
    assert sorted(map(_seen, ghosts), key=repr) == sorted(expected, key=repr)
    assert sorted(e["name"] for e in entities if not e["ghost"]) == ["iron-ore", "stone-furnace"]
    assert game.do("overlaps") == 0
    told = game.do("printed")
    assert any(line.startswith("[Factorion] Planning a 10x4 region") for line in told)
    assert f"placed {len(response.placements)} ghosts" in told[-1]
    assert f"Sinks: {sink_item}" in told[-1]
    if mode == "expert":
        assert response.placements and response.score > 0
    if sink_item == "iron-gear-wheel":  # the machine's ghost carries its recipe
        assert any(e["recipe"] == "iron-gear-wheel" for e in ghosts)


def _seen(entity: dict[str, Any]) -> tuple[Any, ...]:
    """An entity as the plan's placements are compared with it (JSON made its position a list)."""
    x, y = entity["position"]
    return entity["name"], (float(x), float(y)), entity["direction"], entity["type"], entity["recipe"]
