"""The Factorion mod's Lua (mod/factorion) under Lua 5.2 against a fake of the game API.

The replies are validated with the bridge's own models (server/rcon_protocol.py), and
results are sent exactly as the bridge sends them (`command`, `result_batches`)."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from server.rcon_protocol import (
    CMD_ACK,
    CMD_POLL,
    CMD_RESULT,
    CMD_STATUS,
    CMD_VERSION,
    MIN_COMMAND_BYTES,
    PROTOCOL_VERSION,
    AckMessage,
    CommandReply,
    PollReply,
    StatusMessage,
    VersionReply,
    command,
    error_result,
    lua_lists,
    parse_reply,
    result_batches,
)
from shared_schema import SCHEMA_VERSION
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.game import facing_name, to_game_entity
from shared_schema.messages import Placement, PlanJob, PlanResult, Position
from tests.fake_factorio import MOD_DIR, FakeFactorio, load_prototypes

REGION = "factorion-region"
SOURCE = "factorion-source"
SINK = "factorion-sink"


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def game() -> FakeFactorio:
    return FakeFactorio(players=2)


def placement(
    kind: Entity,
    x: int,
    y: int,
    facing: Direction = Direction.EAST,
    end: UndergroundEnd = UndergroundEnd.NONE,
    recipe: str | None = None,
) -> Placement:
    g = to_game_entity(kind, x, y, facing, end, recipe)
    return Placement(
        name=g["name"],
        x=x,
        y=y,
        position=Position(**g["position"]),
        direction=g["direction"],
        facing=facing_name(Direction.NORTH if kind == Entity.ASSEMBLER else facing),
        type=g.get("type"),
        recipe=recipe,
    )


def mark(game: FakeFactorio, x: int, y: int, width: int, height: int, player: int = 1) -> None:
    """Region at (x, y), a source at its left end and a sink at its right end (row y)."""
    game.select_area(player, REGION, x, y, x + width, y + height)
    game.click(player, x, y, SOURCE)
    game.click(player, x + width - 1, y, SINK)


def request(game: FakeFactorio, player: int = 1) -> PlanJob:
    before = {job["job_id"] for job in poll(game)}
    game.raise_event("factorion-request-plan", player_index=player)
    new = [job for job in poll(game) if job["job_id"] not in before]
    assert len(new) == 1, game.printed(player)
    return PlanJob.model_validate(lua_lists(new[0]))


def poll(game: FakeFactorio) -> list[dict[str, Any]]:
    return parse_reply(CMD_POLL, game.command(command(CMD_POLL)), PollReply).jobs


def send(game: FakeFactorio, batch: PlanResult) -> CommandReply:
    return parse_reply(CMD_RESULT, game.command(command(CMD_RESULT, batch)), CommandReply)


def ack(game: FakeFactorio, job_id: str) -> CommandReply:
    return parse_reply(CMD_ACK, game.command(command(CMD_ACK, AckMessage(job_id=job_id))), CommandReply)


def deliver(game: FakeFactorio, job: PlanJob, placements: list[Placement], message: str = "Planned.") -> None:
    for batch in result_batches(job.job_id, placements, message, MIN_COMMAND_BYTES):
        assert send(game, batch).ok
    assert ack(game, job.job_id).ok


def belt_row(job: PlanJob) -> list[Placement]:
    """East belts between the source and the sink on the job's first row (game tiles)."""
    ox, oy = job.origin.x, job.origin.y
    return [placement(Entity.BELT, ox + x, oy) for x in range(1, job.request.region.width - 1)]


def built(game: FakeFactorio) -> set[tuple[Any, ...]]:
    return {(e["name"], e["position"], e["direction"], e["type"], e["recipe"]) for e in game.entities()}


def removals(game: FakeFactorio) -> list[tuple[int | None, int | None]]:
    """Every entity destroyed so far: (player index, undo_index) of the destroy call."""
    return [(r["player"], r["undo_index"]) for r in game.fake.removals.values()]


def expected(placements: list[Placement]) -> set[tuple[Any, ...]]:
    return {(p.name, (p.position.x, p.position.y), p.direction, p.type, p.recipe) for p in placements}


# ---------------------------------------------------------------------------- the package


def test_info_json_and_changelog_are_what_the_game_reads() -> None:
    info = json.loads((MOD_DIR / "info.json").read_text())
    assert info["name"] == "factorion" and info["factorio_version"] == "2.0"
    assert "base >= 2.0" in info["dependencies"]
    config = (MOD_DIR / "scripts" / "config.lua").read_text()
    assert f'mod_version = "{info["version"]}"' in config
    lines = (MOD_DIR / "changelog.txt").read_text().splitlines()
    assert lines[0] == "-" * 99 and lines[1] == f"Version: {info['version']}"
    assert re.fullmatch(r"Date: \d{4}-\d{2}-\d{2}", lines[2])
    for line in lines[3:]:
        assert line == "-" * 99 or re.fullmatch(r"  [A-Z][A-Za-z ]+:|    - \S.*|Version: .*|Date: .*", line), line


def test_images_are_pngs_of_the_right_size() -> None:
    def size(path: Path) -> tuple[int, int]:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
        return struct.unpack(">II", data[16:24])

    assert size(MOD_DIR / "thumbnail.png") == (144, 144)
    for name in ("region", "source", "sink"):
        assert size(MOD_DIR / "graphics" / f"{name}.png") == (64, 64)


def test_prototypes_and_settings_load_and_name_what_exists() -> None:
    prototypes, settings = load_prototypes()
    for tool in (REGION, SOURCE, SINK):
        proto = prototypes[tool]
        assert proto["type"] == "selection-tool" and "only-in-cursor" in proto["flags"]
        for mode in ("select", "alt_select"):
            assert {"border_color", "cursor_box_type", "mode"} <= set(proto[mode])
    assert prototypes["factorion-tools"]["type"] == "shortcut"
    assert prototypes["factorion-request-plan"]["type"] == "custom-input"
    for proto in prototypes.values():
        for key in ("icon", "small_icon"):
            if key in proto:
                path = proto[key].replace("__factorion__/", "")
                assert (MOD_DIR / path).is_file(), proto[key]
    assert settings["factorion-build-real"]["default_value"] is False
    config = (MOD_DIR / "scripts" / "config.lua").read_text()
    for name in settings:
        assert f'"{name}"' in config
    locale = (MOD_DIR / "locale" / "en" / "factorion.cfg").read_text()
    for name in [*prototypes, *settings]:
        assert f"\n{name}=" in locale, name


# ---------------------------------------------------------------------------- commands


def test_version_names_the_protocol_and_schema(game: FakeFactorio) -> None:
    version = parse_reply(CMD_VERSION, game.command(command(CMD_VERSION)), VersionReply)
    assert version.protocol_version == PROTOCOL_VERSION
    assert version.schema_version == SCHEMA_VERSION
    assert version.mod_version == json.loads((MOD_DIR / "info.json").read_text())["version"]


def test_an_empty_queue_polls_as_an_empty_object(game: FakeFactorio) -> None:
    assert game.command(command(CMD_POLL)) == '{"jobs":{}}'
    assert poll(game) == []


def test_a_requested_plan_is_polled_as_a_plan_job(game: FakeFactorio) -> None:
    game.create("stone-furnace", 4, 11)  # covers tiles (3..4, 10..11)
    game.fake.nauvis.water["6,10"] = True
    mark(game, -2, 10, 10, 3)
    game.click(1, 1, 12, SOURCE)
    game.click(1, 1, 12, SOURCE)  # a second click turns it: east -> south
    job = request(game)
    assert job.player_index == 1 and job.surface == "nauvis"
    assert (job.origin.x, job.origin.y) == (-2, 10)
    req = job.request
    assert (req.region.width, req.region.height) == (10, 3)
    assert [(m.x, m.y, m.facing, m.item) for m in req.sources] == [
        (0, 0, "east", "iron-plate"),
        (3, 2, "south", "iron-plate"),
    ]
    assert [(m.x, m.y, m.facing) for m in req.sinks] == [(9, 0, "east")]
    assert sorted((t.x, t.y) for t in req.blocked) == [(5, 0), (5, 1), (6, 0), (6, 1), (8, 0)]
    assert req.options.mode == "search" and req.options.time_budget_s == 1  # the setting's default
    assert poll(game)[0]["job_id"] == job.job_id  # polled again until acknowledged


def test_ore_and_items_on_the_ground_do_not_block_but_a_rock_does(game: FakeFactorio) -> None:
    for x in range(2, 6):
        game.create("iron-ore", x + 0.5, 0.5)  # a region on an ore field, as a mining outpost's
    game.create("item-on-ground", 6.5, 0.5)
    game.create("rock-big", 8, 1)  # covers tiles (7..8, 0..1)
    mark(game, 0, 0, 10, 2)
    blocked = sorted((t.x, t.y) for t in request(game).request.blocked)
    assert blocked == [(7, 0), (7, 1), (8, 0), (8, 1)]


def test_a_request_without_a_sink_or_region_is_not_queued(game: FakeFactorio) -> None:
    game.raise_event("factorion-request-plan", player_index=1)
    game.select_area(1, REGION, 0, 0, 4, 1)
    game.raise_event("factorion-request-plan", player_index=1)
    assert poll(game) == []
    said = game.printed(1)
    assert "mark a region first" in said[0] and "at least one sink" in said[-1]


def test_a_region_over_32_tiles_is_refused(game: FakeFactorio) -> None:
    game.select_area(1, REGION, 0, 0, 33, 2)
    assert "too large" in game.printed(1)[-1]
    assert game.storage_snapshot()["players"].get("1", {}).get("region") is None


def test_a_new_request_replaces_the_players_queued_job(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    first = request(game)
    second = request(game)
    assert [j["job_id"] for j in poll(game)] == [second.job_id]
    reply = send(game, result_batches(first.job_id, [], "x")[0])
    assert reply.code == "unknown_job"


def test_status_messages_reach_the_player_or_everyone(game: FakeFactorio) -> None:
    status = StatusMessage(job_id="1", player_index=2, level="warning", message="Planning a 6x1 region...")
    assert parse_reply(CMD_STATUS, game.command(command(CMD_STATUS, status)), CommandReply).ok
    assert game.printed(2)[-1] == "[Factorion] Planning a 6x1 region..."
    assert game.printed(1) == []
    game.command(command(CMD_STATUS, StatusMessage(level="info", message="hello all")))
    assert list(game.fake.game_printed.values()) == ["[Factorion] hello all"]


def test_players_who_are_not_admins_cannot_send_results(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    job = request(game)
    batch = result_batches(job.job_id, belt_row(job), "Planned.")[0]
    game.player_command(2, command(CMD_RESULT, batch))
    assert "for the Factorion bridge" in game.printed(2)[-1]
    assert game.storage()["jobs"][job.job_id]["staged"] is None


# ---------------------------------------------------------------------------- building


def test_batches_and_ack_place_exactly_the_plan_as_ghosts(game: FakeFactorio) -> None:
    mark(game, -10, 20, 16, 6)
    job = request(game)
    ox, oy = job.origin.x, job.origin.y
    plan = belt_row(job)[:3] + [
        placement(Entity.UNDERGROUND, ox + 4, oy, Direction.EAST, UndergroundEnd.ENTRANCE),
        placement(Entity.UNDERGROUND, ox + 7, oy, Direction.EAST, UndergroundEnd.EXIT),
        placement(Entity.SPLITTER, ox + 8, oy, Direction.EAST),  # tiles (8, 0) and (8, 1)
        placement(Entity.SPLITTER, ox + 10, oy + 1, Direction.NORTH),  # tiles (10, 1) and (11, 1)
        placement(Entity.INSERTER, ox + 2, oy + 1, Direction.SOUTH),
        placement(Entity.LONG_INSERTER, ox + 13, oy + 1, Direction.WEST),
        placement(Entity.ASSEMBLER, ox + 2, oy + 2, recipe="iron-gear-wheel"),
    ]
    plan += [placement(Entity.BELT, ox + x, oy + 5, Direction.WEST) for x in range(16)]
    batches = result_batches(job.job_id, plan, "Factorion planned it. Sinks: iron-plate 15.00/s.", MIN_COMMAND_BYTES)
    assert len(batches) > 1
    for batch in batches:
        assert send(game, batch).ok
    assert game.entities() == []  # staged, nothing built before the ack
    assert ack(game, job.job_id).ok
    assert poll(game) == []
    game.run_until_idle()
    assert built(game) == expected(plan)
    entities = game.entities()
    assert all(e["ghost"] and e["force"] == "player" for e in entities)
    assert [e["undo_index"] for e in entities] == [0] + [1] * (len(plan) - 1)
    assert not len(game.fake.overlaps)
    said = game.printed(1)[-1]
    assert "Sinks: iron-plate 15.00/s." in said and f"placed {len(plan)} ghosts" in said


def test_large_plans_are_placed_over_ticks(game: FakeFactorio) -> None:
    game.lua.globals().settings["global"]["factorion-entities-per-tick"].value = 5
    mark(game, 0, 0, 22, 1)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.tick()
    assert len(game.entities()) == 5
    assert game.run_until_idle() == 3
    assert len(game.entities()) == 20


def test_real_entities_when_the_setting_allows(game: FakeFactorio) -> None:
    game.lua.globals().settings["global"]["factorion-build-real"].value = True
    mark(game, 0, 0, 6, 1)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.run_until_idle()
    assert [e["ghost"] for e in game.entities()] == [False] * 4
    assert "placed 4 entities" in game.printed(1)[-1]


def test_an_error_result_tells_the_player_and_builds_nothing(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    job = request(game)
    assert send(game, error_result(job.job_id, "Factorion could not plan this region: no.")).ok
    assert ack(game, job.job_id).ok
    game.run_until_idle()
    assert game.entities() == [] and poll(game) == []
    assert game.printed(1)[-1] == "[Factorion] Factorion could not plan this region: no."


# ---------------------------------------------------------------------------- refusals


def refuse_case(game: FakeFactorio, job: PlanJob, case: str) -> CommandReply:
    good = belt_row(job)
    if case == "out of order":
        batches = result_batches(job.job_id, good * 40, "m", MIN_COMMAND_BYTES)
        assert send(game, batches[0]).ok
        return send(game, batches[2])
    if case == "mixed status":
        batches = result_batches(job.job_id, good * 40, "m", MIN_COMMAND_BYTES)
        assert send(game, batches[0]).ok
        raw = batches[1].model_dump(exclude_none=True) | {"status": "error", "placements": []}
        return parse_reply(CMD_RESULT, game.command(f"/{CMD_RESULT} {json.dumps(raw)}"), CommandReply)
    if case == "ack too early":
        batches = result_batches(job.job_id, good * 40, "m", MIN_COMMAND_BYTES)
        assert send(game, batches[0]).ok
        return ack(game, job.job_id)
    if case == "outside the region":
        return send(game, result_batches(job.job_id, [*good, placement(Entity.BELT, 50, 0)], "m")[0])
    if case == "overlap":
        assert send(game, result_batches(job.job_id, [*good, good[0]], "m")[0]).ok
        return ack(game, job.job_id)
    if case == "stale":
        assert send(game, result_batches(job.job_id, good, "m")[0]).ok
        game.create("transport-belt", 2.5, 0.5)  # built after the request
        return ack(game, job.job_id)
    raw = result_batches(job.job_id, good, "m")[0].model_dump(exclude_none=True)
    if case == "schema version":
        raw["schema_version"] = 2
    elif case == "bad direction":
        raw["placements"][0]["direction"] = 2
    elif case == "unknown entity":
        raw["placements"][0]["name"] = "fast-transport-belt"
    elif case == "off grid":
        raw["placements"][0]["position"]["x"] = 1.0
    elif case == "no type":
        raw["placements"][0]["name"] = "underground-belt"
    text = f"/{CMD_RESULT} {json.dumps(raw)}"
    return parse_reply(CMD_RESULT, game.command(text), CommandReply)


@pytest.mark.parametrize(
    "case",
    [
        "out of order",
        "mixed status",
        "ack too early",
        "outside the region",
        "overlap",
        "stale",
        "schema version",
        "bad direction",
        "unknown entity",
        "off grid",
        "no type",
    ],
)
def test_a_malformed_or_stale_answer_is_refused_and_the_map_untouched(game: FakeFactorio, case: str) -> None:
    mark(game, 0, 0, 6, 1)
    job = request(game)
    reply = refuse_case(game, job, case)
    assert not reply.ok and reply.code == "refused", reply
    game.run_until_idle()
    others = {("transport-belt", (2.5, 0.5), 0, None, None)} if case == "stale" else set()
    assert built(game) == others
    assert poll(game) == []  # the job is gone, as the contract says
    assert "refused, nothing was built" in game.printed(1)[-1]
    assert ack(game, job.job_id).code == "unknown_job"


def test_answers_for_unknown_jobs_or_without_json(game: FakeFactorio) -> None:
    assert send(game, result_batches("nope", [], "m")[0]).code == "unknown_job"
    assert ack(game, "nope").code == "unknown_job"
    reply = parse_reply(CMD_RESULT, game.command(f"/{CMD_RESULT} not json"), CommandReply)
    assert not reply.ok and reply.code == "refused"
    reply = parse_reply(CMD_ACK, game.command(f"/{CMD_ACK}"), CommandReply)
    assert not reply.ok


def test_batch_zero_again_restarts_the_delivery(game: FakeFactorio) -> None:
    mark(game, 0, 0, 30, 1)
    job = request(game)
    batches = result_batches(job.job_id, belt_row(job) * 1, "m", MIN_COMMAND_BYTES)
    long_batches = result_batches(job.job_id, belt_row(job) * 30, "m", MIN_COMMAND_BYTES)
    assert send(game, long_batches[0]).ok and send(game, long_batches[1]).ok
    for batch in batches:  # the bridge reconnected and starts over
        assert send(game, batch).ok
    assert ack(game, job.job_id).ok
    game.run_until_idle()
    assert built(game) == expected(belt_row(job))


# ---------------------------------------------------------------------------- re-plan and clear


def test_replanning_removes_only_what_the_previous_plan_placed(game: FakeFactorio) -> None:
    mark(game, 0, 0, 8, 3)
    first = request(game)
    plan_a = belt_row(first)
    deliver(game, first, plan_a)
    game.run_until_idle()
    foreign = game.create("inserter", 3.5, 2.5)  # someone else's, inside the region
    outside = game.create("transport-belt", 20.5, 0.5)
    second = request(game)
    blocked = {(t.x, t.y) for t in second.request.blocked}
    assert blocked == {(3, 2)}  # plan A's ghosts do not block its re-plan
    plan_b = [placement(Entity.BELT, x, 1, Direction.EAST) for x in range(0, 8)]
    deliver(game, second, plan_b)
    game.run_until_idle()
    assert foreign.valid and outside.valid
    assert built(game) == expected(plan_b) | {
        ("inserter", (3.5, 2.5), 0, None, None),
        ("transport-belt", (20.5, 0.5), 0, None, None),
    }
    # one undo item for the whole re-plan: plan A's removal opens it, plan B joins it
    assert removals(game) == [(1, 0)] + [(1, 1)] * (len(plan_a) - 1)
    assert {e["undo_index"] for e in game.entities() if e["ghost"]} == {1}


def test_clearing_removes_only_factorion_entities(game: FakeFactorio) -> None:
    mark(game, 0, 0, 8, 3)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.run_until_idle()
    game.create("stone-furnace", 1, 2)
    game.select_area(1, REGION, 0, 0, 8, 3, alt=True)
    assert [e["name"] for e in game.entities()] == ["stone-furnace"]
    assert "removed 6 entities" in game.printed(1)[-1]
    assert removals(game) == [(1, 0)] + [(1, 1)] * 5  # one undo item brings them back
    assert game.storage_snapshot()["plans"] == {}


def test_a_ghost_built_meanwhile_is_not_removed_twice(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.run_until_idle()
    ghost = game.fake.created[1]
    ghost.destroy()  # a robot built it: the ghost is gone
    game.click(1, 0, 0, REGION, alt=True)
    assert game.entities() == []
    assert "removed 3 entities" in game.printed(1)[-1]


# ---------------------------------------------------------------------------- tools and multiplayer


def test_the_window_chooses_items_and_facing(game: FakeFactorio) -> None:
    game.raise_event("on_lua_shortcut", player_index=1, prototype_name="factorion-tools")
    frame = game.fake.players[1].gui.screen.factorion_frame
    assert frame is not None and frame.valid
    source_item = frame.factorion_choices.factorion_source_item
    source_item.elem_value = "copper-plate"
    game.raise_event("on_gui_elem_changed", player_index=1, element=source_item)
    facing = frame.factorion_choices.factorion_facing
    facing.selected_index = 3
    game.raise_event("on_gui_selection_state_changed", player_index=1, element=facing)
    game.raise_event("on_gui_click", player_index=1, element=frame.factorion_tools.factorion_source_button)
    assert game.fake.players[1].cursor == SOURCE
    game.select_area(1, REGION, 0, 0, 3, 3)
    game.click(1, 1, 0, SOURCE)
    game.click(1, 1, 2, SINK)
    game.raise_event("on_gui_click", player_index=1, element=frame.factorion_actions.factorion_plan_button)
    job = PlanJob.model_validate(lua_lists(poll(game)[0]))
    assert [(m.item, m.facing) for m in job.request.sources] == [("copper-plate", "south")]
    assert "plan requested" in frame.factorion_status.caption
    game.raise_event("on_lua_shortcut", player_index=1, prototype_name="factorion-tools")
    assert game.fake.players[1].gui.screen.factorion_frame is None


def test_a_region_on_another_surface_drops_the_markers_of_the_last(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 2)
    game.select_area(1, REGION, 0, 0, 6, 2, surface="platform")  # the same tiles elsewhere
    game.raise_event("factorion-request-plan", player_index=1)
    assert poll(game) == []  # no sink on this surface yet
    assert "place at least one sink" in game.printed(1)[-1]


def test_players_keep_their_own_regions_and_jobs(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1, player=1)
    mark(game, 0, 10, 4, 1, player=2)
    one, two = request(game, 1), request(game, 2)
    assert (one.player_index, two.player_index) == (1, 2)
    assert [j["job_id"] for j in poll(game)] == [one.job_id, two.job_id]
    deliver(game, two, belt_row(two))
    game.run_until_idle()
    assert "placed 2 ghosts" in game.printed(2)[-1]
    assert not any("placed" in line for line in game.printed(1))


def test_loading_a_save_writes_nothing_and_keeps_serving(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.tick()
    mark(game, 0, 5, 6, 1)
    request(game)
    before = game.storage_snapshot()
    game.reload()
    assert game.storage_snapshot() == before
    assert len(poll(game)) == 1
    game.run_until_idle()
    assert len(game.entities()) == 4


def test_entities_invalidated_elsewhere_are_skipped_not_fatal(game: FakeFactorio) -> None:
    game.lua.globals().settings["global"]["factorion-entities-per-tick"].value = 1
    mark(game, 0, 0, 6, 1)
    job = request(game)
    deliver(game, job, belt_row(job))
    game.tick()
    game.create("transport-belt", 3.5, 0.5, 4)  # someone builds on a planned tile meanwhile
    game.run_until_idle()
    assert "skipped 1" in game.printed(1)[-1]
    assert not len(game.fake.overlaps)


def test_the_fake_enforces_the_api(game: FakeFactorio) -> None:
    lua = game.lua
    surface = game.fake.nauvis
    params = {"name": "entity-ghost", "innername": "transport-belt", "position": lua.table_from({"x": 0.5, "y": 0.5})}
    with pytest.raises(Exception, match="unknown parameter 'innername'"):
        surface.create_entity(lua.table_from({**params, "force": "player"}))
    with pytest.raises(Exception, match="only faces 0, 4, 8 or 12"):
        game.create("transport-belt", 0.5, 0.5, 2)
    with pytest.raises(Exception, match="cannot be centred"):
        game.create("transport-belt", 1, 1)
    with pytest.raises(Exception, match="does not exist"):
        lua.execute("return defines.events.on_player_selected_aera")
    assert game.create("stone-furnace", 1, 1) is not None
    assert game.create("transport-belt", 0.5, 0.5) is not None  # over the furnace: the game lets a script do it
    assert len(game.fake.overlaps) == 1


def test_build_mod_zips_the_game_layout(tmp_path: Path) -> None:
    import zipfile

    from scripts.build_mod import build

    target = build(MOD_DIR, tmp_path)
    version = json.loads((MOD_DIR / "info.json").read_text())["version"]
    assert target.name == f"factorion_{version}.zip"
    names = zipfile.ZipFile(target).namelist()
    top = f"factorion_{version}/"
    assert all(name.startswith(top) for name in names)
    for required in ("info.json", "control.lua", "data.lua", "settings.lua", "changelog.txt", "thumbnail.png"):
        assert top + required in names
    assert top + "locale/en/factorion.cfg" in names
    assert build(MOD_DIR, tmp_path).read_bytes() == target.read_bytes()  # reproducible


def test_clear_cancels_the_queued_plan_and_keeps_the_rest(game: FakeFactorio) -> None:
    mark(game, 0, 0, 6, 1)
    first = request(game)
    deliver(game, first, belt_row(first))
    game.run_until_idle()
    second = request(game)
    assert game.lua.eval('remote.call("factorion", "clear", 1)') == 4
    assert poll(game) == [] and game.entities() == []
    assert "Cancelled the queued plan." in game.printed(1)[-1]
    assert send(game, result_batches(second.job_id, belt_row(second), "m")[0]).code == "unknown_job"
    assert game.lua.eval('remote.call("factorion", "queued_jobs")') == 0
