"""The RCON bridge against a fake game on a real RCON socket and a fake planning server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from server.bridge import Bridge, BridgeConfig, BridgeError, parse_args
from server.rcon_protocol import (
    CMD_ACK,
    CMD_POLL,
    CMD_RESULT,
    CMD_STATUS,
    CMD_VERSION,
    MAX_COMMAND_BYTES,
    MAX_MESSAGE_CHARS,
    MIN_COMMAND_BYTES,
    PROTOCOL_VERSION,
    CommandReply,
    PollReply,
    StatusMessage,
    VersionReply,
    command,
    error_result,
    player_text,
    result_batches,
)
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.messages import (
    Placement,
    PlanJob,
    PlanRequest,
    PlanResponse,
    PlanResult,
    SinkResult,
    placements_from_world,
)
from tests.fake_rcon import FakeMod, FakeRconServer, Fault

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret"
ORIGIN = (-10, 20)


def job(job_id: str = "7", width: int = 32, height: int = 4, item: str = "iron-plate") -> dict[str, Any]:
    """A job as the mod would queue it: a source on the left, a sink on the right."""
    return {
        "schema_version": 1,
        "job_id": job_id,
        "player_index": 1,
        "surface": "nauvis",
        "origin": {"x": ORIGIN[0], "y": ORIGIN[1]},
        "request": {
            "schema_version": 1,
            "region": {"width": width, "height": height},
            "sources": [{"x": 0, "y": 0, "facing": "east", "item": item}],
            "sinks": [{"x": width - 1, "y": 0, "facing": "east", "item": item}],
            "options": {"mode": "greedy", "time_budget_s": 1, "seed": 0},
        },
    }


def region_placements(request: PlanRequest) -> list[Placement]:
    """The fake planner's layout: an east-facing belt on every free tile."""
    world = request.to_world()
    for y in range(world.height):
        for x in range(world.width):
            if world.entity(x, y) == Entity.EMPTY:
                world.place(Entity.BELT, x, y, Direction.EAST)
    return placements_from_world(world)


def expected_placements(raw_job: dict[str, Any]) -> list[Placement]:
    request = PlanRequest.model_validate(raw_job["request"])
    return [p.shifted(*ORIGIN) for p in region_placements(request)]


class FakePlanner:
    """POST /plan: answers like the real server, or with `fail` (status, body) responses first."""

    def __init__(self, fail: list[tuple[int, Any]] | None = None, before: Callable[[], None] | None = None):
        self.requests: list[PlanRequest] = []
        self.fail = list(fail or [])
        self.before = before

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/plan"
        plan = PlanRequest.model_validate_json(request.content)
        self.requests.append(plan)
        if self.before is not None:
            self.before()
        if self.fail:
            status, body = self.fail.pop(0)
            return httpx.Response(status, json=body)
        response = PlanResponse(
            placements=region_placements(plan),
            sinks=[SinkResult(x=s.x, y=s.y, item=s.item, per_second=15.0, best_per_second=15.0) for s in plan.sinks],
            score=1.0,
            grid="(grid)",
            blueprint="0eNo=",
            policy="fake-policy 1",
            timings_ms={"plan": 1.0},
        )
        return httpx.Response(200, content=response.model_dump_json())


@pytest.fixture
def mod() -> FakeMod:
    return FakeMod()


@pytest.fixture
def game(mod: FakeMod) -> Iterator[FakeRconServer]:
    with FakeRconServer(PASSWORD, mod) as server:
        yield server


def make_bridge(game: FakeRconServer, planner: FakePlanner, password: str = PASSWORD, **overrides: Any) -> Bridge:
    settings: dict[str, Any] = {
        "poll_interval_s": 0.01,
        "rcon_timeout_s": 5.0,
        "backoff_initial_s": 0.01,  # scaled down from 0.5 s
        "backoff_max_s": 0.05,
        "plan_attempts": 2,
    }
    config = BridgeConfig(
        rcon_host="127.0.0.1",
        rcon_port=game.port,
        rcon_password=password,
        server_url="http://planner.test",
        **{**settings, **overrides},
    )
    return Bridge(config, http_transport=httpx.MockTransport(planner))


@contextmanager
def running(bridge: Bridge) -> Iterator[list[BaseException]]:
    """The bridge on a thread; the list collects what it raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            bridge.run(stop)
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(timeout=10)
        bridge.close()
        assert not thread.is_alive(), "the bridge did not stop"


def wait_for(condition: Callable[[], bool], errors: list[BaseException], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert not errors, f"the bridge stopped: {errors[0]!r}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def polls_after(game: FakeRconServer, marker: str) -> int:
    """How many polls the game received after the last command containing `marker`."""
    commands = list(game.commands)
    last = max((i for i, c in enumerate(commands) if marker in c), default=None)
    if last is None:
        return 0
    return sum(c == command(CMD_POLL) for c in commands[last + 1 :])


# ------------------------------------------------------------------ end to end


def test_a_job_is_planned_delivered_and_built_once(game: FakeRconServer, mod: FakeMod) -> None:
    planner = FakePlanner()
    bridge = make_bridge(game, planner)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
        wait_for(lambda: polls_after(game, "factorion-ack") >= 2, errors)  # and it keeps polling
    built = mod.built[0]
    assert built.job_id == "7" and built.status == "ok"
    assert built.placements == expected_placements(job("7"))
    assert "Factorion planned 126 entities" in built.message and "iron-plate 15.00/s" in built.message
    assert planner.requests == [PlanRequest.model_validate(job()["request"])]
    assert list(bridge.delivered) == ["7"] and mod.jobs == {}
    assert bridge.mod_version is not None and bridge.mod_version.mod_version == "0.1.0"
    first = StatusMessage.model_validate(mod.statuses[0])
    assert (first.job_id, first.player_index, first.level) == ("7", 1, "info")
    assert "Planning a 32x4 region" in first.message
    assert game.errors == [] and game.connections == 1


def test_placements_arrive_in_ordered_batches_that_fit(game: FakeRconServer, mod: FakeMod) -> None:
    bridge = make_bridge(game, FakePlanner(), max_command_bytes=2600)
    mod.queue(job("a", height=8))
    mod.queue(job("b", width=5, height=1))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 2, errors)
    a = [r for r in mod.batches if r.job_id == "a"]
    assert len(a) > 5
    assert [r.batch_index for r in a] == list(range(len(a)))
    assert {r.batch_count for r in a} == {len(a)}
    assert a[0].message and all(r.message == "" for r in a[1:])
    assert [p for r in a for p in r.placements] == expected_placements(job("a", height=8))
    assert [b.job_id for b in mod.built] == ["a", "b"]  # queue order
    assert all(len(c.encode()) <= 2600 for c in game.commands)
    assert game.errors == []


def test_result_batches_split_exactly_at_the_limit() -> None:
    placements = expected_placements(job())
    for limit in (600, 1000, 4000):
        batches = result_batches("j", placements, "hello", limit)
        sizes = [len(command(CMD_RESULT, b).encode()) for b in batches]
        assert max(sizes) <= limit
        assert [p for b in batches for p in b.placements] == placements
    assert len(result_batches("j", [], "nothing to build")) == 1
    with pytest.raises(ValueError, match="cannot carry even one placement"):
        result_batches("j", placements, "hello", 200)


def test_any_message_fits_the_smallest_command_allowed() -> None:
    worst = 'é"\\' * MAX_MESSAGE_CHARS + "\n" * 50
    status = StatusMessage(job_id="j" * 64, player_index=1, level="error", message=player_text(worst))
    assert len(command(CMD_STATUS, status).encode()) <= MIN_COMMAND_BYTES
    assert len(command(CMD_RESULT, error_result("j" * 64, worst)).encode()) <= MIN_COMMAND_BYTES
    assert player_text("two\nlines\t and  spaces") == "two lines and spaces"
    with pytest.raises(ValueError, match="max_command_bytes must be at least"):
        BridgeConfig(max_command_bytes=MIN_COMMAND_BYTES - 1)


def test_empty_lua_tables_read_as_empty_lists(game: FakeRconServer, mod: FakeMod) -> None:
    assert PollReply.model_validate({"jobs": {}}).jobs == []
    raw = job("7", width=4, height=1)
    raw["request"]["blocked"] = {}  # how helpers.table_to_json writes an empty list
    mod.queue(raw)
    with running(make_bridge(game, FakePlanner())) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
    assert mod.built[0].status == "ok"


# ------------------------------------------------------------------ versions and passwords


def test_a_protocol_mismatch_stops_the_bridge_and_says_so(game: FakeRconServer, mod: FakeMod) -> None:
    mod.protocol_version = 2
    mod.mod_version = "0.9.0"
    bridge = make_bridge(game, FakePlanner())
    with pytest.raises(BridgeError, match=r"mod 0\.9\.0 speaks RCON protocol 2, this bridge speaks 1"):
        bridge.run()
    assert mod.chat and "protocol 2" in mod.chat[0]  # the players are told in chat
    assert not any("factorion-poll" in c for c in game.commands)


def test_a_schema_mismatch_stops_the_bridge(game: FakeRconServer, mod: FakeMod) -> None:
    mod.schema_version = 99
    with pytest.raises(BridgeError, match="message schema version 99, this bridge speaks 1"):
        make_bridge(game, FakePlanner()).run()


def test_a_game_without_the_mod_is_named(mod: FakeMod) -> None:
    with FakeRconServer(PASSWORD, lambda text: 'Unknown command "factorion-version".\n') as game:
        with pytest.raises(BridgeError, match="is the Factorion mod installed"):
            make_bridge(game, FakePlanner()).run()


def test_a_wrong_password_fails_clearly(game: FakeRconServer) -> None:
    bridge = make_bridge(game, FakePlanner(), password="wrong")
    with pytest.raises(BridgeError, match=r"refused the RCON password: set FACTORION_RCON_PASSWORD"):
        bridge.run()
    assert game.connections == 1  # not retried


# ------------------------------------------------------------------ reconnects


def test_a_dropped_connection_reconnects_with_backoff_and_delivers_once(game: FakeRconServer, mod: FakeMod) -> None:
    # The game closes the socket as batch 1 arrives, then refuses two reconnections.
    game.faults.append(Fault(match='"batch_index":1,', when="before", refuse_after=2))
    planner = FakePlanner()
    bridge = make_bridge(game, planner, max_command_bytes=2600)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
    assert list(bridge.reconnect_delays) == [0.01, 0.02, 0.04]  # doubling from the scaled-down start
    assert game.connections == 4
    assert len(planner.requests) == 1  # the re-polled job was not planned again
    indices = [r.batch_index for r in mod.batches]
    assert indices[:2] == [0, 0] and indices[1:] == list(range(indices[-1] + 1))  # restarted from batch 0
    assert mod.built[0].placements == expected_placements(job("7"))
    assert list(bridge.delivered) == ["7"]


def test_a_lost_ack_reply_builds_the_job_once(game: FakeRconServer, mod: FakeMod) -> None:
    # The mod acts on the ack but the reply never arrives: the job is built, and after
    # the reconnect it is no longer polled, so nothing is sent again.
    game.faults.append(Fault(match="factorion-ack", when="after"))
    planner = FakePlanner()
    bridge = make_bridge(game, planner)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1 and game.connections == 2, errors)
        wait_for(lambda: polls_after(game, "factorion-ack") >= 3, errors)
    assert len(mod.built) == 1 and len(planner.requests) == 1
    last_ack = max(i for i, c in enumerate(game.commands) if "factorion-ack" in c)
    assert not any("factorion-result" in c for c in game.commands[last_ack:])


def test_the_game_down_at_start_is_waited_for(mod: FakeMod) -> None:
    with FakeRconServer(PASSWORD, mod) as game:
        game.refuse_next = 3
        bridge = make_bridge(game, FakePlanner())
        mod.queue(job("7", width=4, height=1))
        with running(bridge) as errors:
            wait_for(lambda: len(mod.built) == 1, errors)
        assert list(bridge.reconnect_delays) == [0.01, 0.02, 0.04]


# ------------------------------------------------------------------ errors for the player


def test_a_planning_server_error_is_reported_to_the_player(game: FakeRconServer, mod: FakeMod) -> None:
    planner = FakePlanner(fail=[(500, {"detail": "the policy crashed"})])
    bridge = make_bridge(game, planner)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
    built = mod.built[0]
    assert built.status == "error" and built.placements == []
    assert "HTTP 500" in built.message and "the policy crashed" in built.message
    error = StatusMessage.model_validate(mod.statuses[-1])
    assert (error.job_id, error.player_index, error.level) == ("7", 1, "error")
    assert "the policy crashed" in error.message
    assert len(planner.requests) == 1  # a 500 is not retried


def test_a_refused_request_names_the_field(game: FakeRconServer, mod: FakeMod) -> None:
    detail = [{"loc": ["body", "sinks", 0, "item"], "msg": "no recipe makes it", "type": "value_error"}]
    bridge = make_bridge(game, FakePlanner(fail=[(422, {"detail": detail})]))
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
    assert "HTTP 422" in mod.built[0].message and "body.sinks.0.item: no recipe makes it" in mod.built[0].message


def test_an_unavailable_planning_server_is_retried_then_reported(game: FakeRconServer, mod: FakeMod) -> None:
    planner = FakePlanner(fail=[(503, {"detail": "policy not loaded"})] * 2)
    bridge = make_bridge(game, planner)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 1, errors)
    assert len(planner.requests) == 2
    levels = [StatusMessage.model_validate(s).level for s in mod.statuses]
    assert levels == ["info", "warning", "error"]
    assert "policy not loaded" in mod.built[0].message and "tried 2 times" in mod.built[0].message


def test_stopping_while_the_planning_server_is_away_keeps_the_job(game: FakeRconServer, mod: FakeMod) -> None:
    planner = FakePlanner(fail=[(503, {"detail": "policy not loaded"})] * 3)
    bridge = make_bridge(game, planner, backoff_initial_s=30.0, backoff_max_s=30.0)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: any(s["level"] == "warning" for s in mod.statuses), errors)
        started = time.monotonic()
    assert time.monotonic() - started < 5  # the 30 s retry wait was cut short
    assert "7" in mod.jobs and mod.batches == [] and mod.built == []  # for the next bridge to plan


def test_a_job_the_bridge_cannot_read_is_answered_and_others_go_on(game: FakeRconServer, mod: FakeMod) -> None:
    mod.queue(job("bad", item="unobtainium"))
    mod.queue(job("good", width=4, height=1))
    planner = FakePlanner()
    bridge = make_bridge(game, planner)
    with running(bridge) as errors:
        wait_for(lambda: len(mod.built) == 2, errors)
    bad, good = mod.built
    assert bad.status == "error" and "could not read this request" in bad.message and "unobtainium" in bad.message
    assert good.status == "ok" and len(planner.requests) == 1


def test_a_job_cancelled_while_planning_is_dropped(game: FakeRconServer, mod: FakeMod) -> None:
    planner = FakePlanner(before=lambda: mod.jobs.pop("7", None))
    bridge = make_bridge(game, planner)
    mod.queue(job("7"))
    with running(bridge) as errors:
        wait_for(lambda: polls_after(game, "factorion-result") >= 2, errors)
    assert mod.built == [] and not bridge.delivered and len(planner.requests) == 1


# ------------------------------------------------------------------ command line


def test_configuration_comes_from_the_environment() -> None:
    env = {
        "FACTORION_RCON_HOST": "factorio",
        "FACTORION_RCON_PORT": "27016",
        "FACTORION_RCON_PASSWORD": "pw",
        "FACTORION_SERVER_URL": "http://server:8000",
    }
    config = parse_args([], env)
    assert (config.rcon_host, config.rcon_port, config.rcon_password, config.server_url) == (
        "factorio",
        27016,
        "pw",
        "http://server:8000",
    )
    assert parse_args(["--rcon-host", "h"], env).rcon_host == "h"
    with pytest.raises(SystemExit):
        parse_args([], {})


def test_the_module_runs_and_asks_for_a_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.bridge", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0 and "FACTORION_RCON_PASSWORD" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "server.bridge"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert result.returncode == 2 and "no RCON password" in result.stderr


def test_status_json_is_what_the_docs_show() -> None:
    status = StatusMessage(job_id="7", player_index=1, level="info", message="Planning...")
    assert command("factorion-status", status) == (
        '/factorion-status {"job_id":"7","player_index":1,"level":"info","message":"Planning..."}'
    )
    assert json.loads(command("factorion-status", StatusMessage(level="error", message="x"))[18:]) == {
        "level": "error",
        "message": "x",
    }


def test_the_protocol_doc_matches_the_code() -> None:
    doc = (REPO / "docs" / "BRIDGE.md").read_text()
    for name in (CMD_VERSION, CMD_POLL, CMD_STATUS, CMD_RESULT, CMD_ACK):
        assert f"`/{name}" in doc
    assert f"protocol version {PROTOCOL_VERSION}" in doc and f"{MAX_COMMAND_BYTES} bytes" in doc
    models: dict[str, type[BaseModel]] = {
        "protocol_version": VersionReply,
        "surface": PlanJob,
        "batch_index": PlanResult,
        "level": StatusMessage,
    }
    checked = set()
    for block in re.findall(r"```json\n(.*?)```", doc, re.S):
        for text in (block, *block.splitlines()):  # a whole example, or one per line
            try:
                example = json.loads(text)
            except json.JSONDecodeError:
                continue  # e.g. {"jobs": [PlanJob, ...]}
            keys = [k for k in models if k in example] or (["ok"] if "ok" in example else [])
            for key in keys:
                models.get(key, CommandReply).model_validate(example)
                checked.add(key)
    assert checked == {*models, "ok"}
