"""End to end: the real mod's Lua behind a real RCON socket, the real bridge, and the
planning server (`server.app` under uvicorn on 127.0.0.1) on an exported policy. A player
marks a region, a source and a sink, and asks for a plan; the ghosts that appear are
exactly the plan's placements."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from server.app import Settings, create_app
from server.bridge import Bridge, BridgeConfig
from shared_schema.messages import PlanResponse
from tests.fake_factorio import FakeFactorio
from tests.fake_rcon import FakeRconServer

PASSWORD = "e2e-secret"


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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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


@pytest.fixture
def game() -> Iterator[tuple[FakeFactorio, FakeRconServer]]:
    factorio = FakeFactorio(players=1)
    with FakeRconServer(PASSWORD, factorio.command) as server:
        yield factorio, server


def run_bridge(server: FakeRconServer, url: str, http: Recording) -> tuple[Bridge, threading.Event, threading.Thread]:
    config = BridgeConfig(rcon_port=server.port, rcon_password=PASSWORD, server_url=url, poll_interval_s=0.01)
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
def test_a_player_asks_for_a_plan_and_gets_its_ghosts(
    game: tuple[FakeFactorio, FakeRconServer], server_url: str, mode: str, sink_item: str
) -> None:
    factorio, server = game
    factorio.fake.players[1].mod_settings["factorion-plan-mode"].value = mode
    factorio.fake.players[1].mod_settings["factorion-time-budget"].value = 5
    factorio.create("stone-furnace", 6, 13)  # something already in the region: tiles (5..6, 12..13)
    factorio.create("iron-ore", -1.5, 13.5)  # ore, which does not block
    if sink_item != "iron-plate":  # chosen in the tools' window
        factorio.raise_event("on_lua_shortcut", player_index=1, prototype_name="factorion-tools")
        chooser = factorio.fake.players[1].gui.screen.factorion_frame.factorion_choices.factorion_sink_item
        chooser.elem_value = sink_item
        factorio.raise_event("on_gui_elem_changed", player_index=1, element=chooser)
    factorio.select_area(1, "factorion-region", -3, 10, 7, 14)  # 10x4 at (-3, 10)
    factorio.click(1, -3, 10, "factorion-source")  # east, iron-plate: the defaults
    factorio.click(1, 6, 10, "factorion-sink")
    factorio.raise_event("factorion-request-plan", player_index=1)

    http = Recording()
    bridge, stop, thread = run_bridge(server, server_url, http)
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

    (response,) = http.responses
    expected = {
        (p.name, (p.position.x - 3, p.position.y + 10), p.direction, p.type, p.recipe) for p in response.placements
    }
    ghosts = [e for e in factorio.entities() if e["ghost"]]
    assert {(e["name"], e["position"], e["direction"], e["type"], e["recipe"]) for e in ghosts} == expected
    assert len(ghosts) == len(response.placements)
    assert sorted(e["name"] for e in factorio.entities() if not e["ghost"]) == ["iron-ore", "stone-furnace"]
    assert not len(factorio.fake.overlaps)
    told = factorio.printed(1)
    assert any(line.startswith("[Factorion] Planning a 10x4 region") for line in told)
    assert f"placed {len(response.placements)} ghosts" in told[-1]
    assert f"Sinks: {sink_item}" in told[-1]
    assert not server.errors
    if mode == "expert":
        assert response.placements and response.score > 0
    if sink_item == "iron-gear-wheel":  # the machine's ghost carries its recipe
        assert any(e["recipe"] == "iron-gear-wheel" for e in ghosts)
