"""The message schema: what /plan and the mod<->bridge messages accept, refuse and emit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import shared_schema
from shared_schema.blueprint import encode_blueprint
from shared_schema.catalog import load_catalog
from shared_schema.entities import Entity
from shared_schema.grid import apply_items, parse_grid, render_grid
from shared_schema.messages import (
    MODELS,
    Placement,
    PlanJob,
    PlanRequest,
    PlanResponse,
    PlanResult,
    Position,
    SinkResult,
    placements_from_world,
)
from shared_schema.world import Channel, World

ROOT = Path(__file__).resolve().parent.parent


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema_version": 1,
        "region": {"width": 6, "height": 2},
        "sources": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}],
        "sinks": [{"x": 5, "y": 0, "facing": "east", "item": "iron-plate"}],
        "blocked": [{"x": 2, "y": 0}],
    }
    body.update(changes)
    return body


def refusal(model: type[Any], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    return str(raised.value)


def test_schema_version_is_one_and_lives_in_the_package() -> None:
    assert shared_schema.SCHEMA_VERSION == 1


def test_a_plan_request_parses_with_documented_defaults() -> None:
    parsed = PlanRequest.model_validate(request())
    assert (parsed.options.mode, parsed.options.time_budget_s, parsed.options.seed) == ("search", 1.0, 0)
    assert PlanRequest.model_validate_json(parsed.model_dump_json()) == parsed


def test_a_request_becomes_a_world_with_markers_and_blocked_tiles() -> None:
    world = PlanRequest.model_validate(request()).to_world()
    assert render_grid(world) == "S> .. ## .. .. K>\n.. .. .. .. .. .."
    iron = load_catalog().item_id("iron-plate")
    assert world.data[Channel.ITEM, 0, 0] == iron and world.data[Channel.ITEM, 0, 5] == iron


def test_unknown_items_are_refused_by_name() -> None:
    body = request(sinks=[{"x": 5, "y": 0, "facing": "east", "item": "unobtainium"}])
    assert "unobtainium" in refusal(PlanRequest, body)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sinks": [{"x": 6, "y": 0, "facing": "east", "item": "iron-plate"}]}, "sinks[0] at (6, 0) is off the 6x2"),
        ({"sinks": [{"x": 0, "y": -1, "facing": "east", "item": "iron-plate"}]}, "is off the 6x2 region"),
        ({"sinks": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}]}, "is on top of sources[0]"),
        ({"sinks": [{"x": 2, "y": 0, "facing": "east", "item": "iron-plate"}]}, "is on a blocked tile"),
        ({"blocked": [{"x": 9, "y": 9}]}, "blocked[0] at (9, 9) is off"),
        ({"sinks": []}, "at least 1"),
    ],
)
def test_markers_must_fit_the_region(changes: dict[str, Any], says: str) -> None:
    assert says in refusal(PlanRequest, request(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"region": {"width": 0, "height": 2}},
        {"region": {"width": 33, "height": 2}},
        {"options": {"time_budget_s": 0}},
        {"options": {"time_budget_s": 61}},
        {"options": {"mode": "random"}},
        {"sinks": [{"x": 5, "y": 0, "facing": "up", "item": "iron-plate"}]},
    ],
)
def test_out_of_range_values_are_refused(changes: dict[str, Any]) -> None:
    refusal(PlanRequest, request(**changes))


def test_the_largest_region_and_budget_are_accepted() -> None:
    PlanRequest.model_validate(request(region={"width": 32, "height": 32}, options={"time_budget_s": 60}))


def test_typos_are_caught() -> None:
    assert "sink" in refusal(PlanRequest, request(sink=[]))
    body = request(options={"mode": "greedy", "time_budget": 5})
    assert "time_budget" in refusal(PlanRequest, body)


@pytest.mark.parametrize("model", [PlanRequest, PlanJob, PlanResponse, PlanResult])
def test_a_version_this_side_does_not_speak_is_refused_saying_which_it_speaks(model: type[Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate({"schema_version": 2, "anything": "else"})
    assert raised.value.error_count() == 1
    assert "schema_version 2 is not spoken here; this side speaks version 1" in str(raised.value)


def test_a_request_must_say_its_version() -> None:
    body = request()
    del body["schema_version"]
    assert "schema_version" in refusal(PlanRequest, body)


# ---------------------------------------------------------------------------- placements / response


LAYOUT = """\
S> i> d> u> b> K>
aaaaaaaa Y> .. ..
aa    aa Y> .. ..
aaaaaaaa .. .. .."""


def layout() -> World:
    world = parse_grid(LAYOUT)
    apply_items(world, [{"x": 0, "y": 0, "item": "iron-plate"}, {"x": 0, "y": 1, "item": "iron-gear-wheel"}])
    return world


def test_placements_carry_both_our_and_the_game_s_terms_without_markers() -> None:
    placements = {p.name: p for p in placements_from_world(layout())}
    assert len(placements_from_world(layout())) == 6
    inserter = placements["inserter"]
    assert (inserter.x, inserter.y, inserter.facing, inserter.direction) == (1, 0, "east", 12)
    assert inserter.position == Position(x=1.5, y=0.5)
    types = sorted(p.type or "" for p in placements_from_world(layout()) if p.name == "underground-belt")
    assert types == ["input", "output"]
    machine = placements["assembling-machine-1"]
    assert (machine.recipe, machine.position, machine.direction) == ("iron-gear-wheel", Position(x=1.5, y=2.5), 0)
    splitter = placements["splitter"]
    assert (splitter.x, splitter.y, splitter.direction, splitter.position) == (3, 1, 4, Position(x=3.5, y=2.0))


def test_a_placement_whose_game_fields_disagree_is_refused() -> None:
    good = placements_from_world(layout())[0].model_dump()  # the inserter at (1, 0)
    assert "describe" in refusal(Placement, {**good, "direction": 4})
    assert "describe" in refusal(Placement, {**good, "position": {"x": 9.5, "y": 0.5}})
    assert "underground" in refusal(Placement, {**good, "type": "input"})


def test_shifted_placements_move_anchor_and_centre_together() -> None:
    placement = placements_from_world(layout())[0].shifted(100, -50)
    assert (placement.x, placement.y, placement.position) == (101, -50, Position(x=101.5, y=-49.5))
    Placement.model_validate(placement.model_dump())


def test_a_response_round_trips_through_json() -> None:
    world = layout()
    response = PlanResponse(
        placements=placements_from_world(world),
        sinks=[SinkResult(x=5, y=0, item="iron-plate", per_second=0.86, best_per_second=15)],
        score=0.24,
        grid=render_grid(world),
        blueprint=encode_blueprint(world),
        policy="expert/1",
        timings_ms={"plan": 3.5},
    )
    assert response.schema_version == 1
    assert PlanResponse.model_validate_json(response.model_dump_json()) == response
    with pytest.raises(ValidationError):
        PlanResponse.model_validate({**response.model_dump(), "score": 1.5})


# ---------------------------------------------------------------------------- mod <-> bridge


def test_a_plan_job_carries_a_whole_plan_request() -> None:
    job = PlanJob.model_validate(
        {
            "schema_version": 1,
            "job_id": "7",
            "player_index": 1,
            "surface": "nauvis",
            "origin": {"x": -120, "y": 48},
            "request": request(),
        }
    )
    assert job.request.to_world().entity(0, 0) == Entity.SOURCE
    bad = job.model_dump()
    bad["request"]["sinks"][0]["item"] = "unobtainium"
    assert "unobtainium" in refusal(PlanJob, bad)
    assert "player_index" in refusal(PlanJob, {**job.model_dump(), "player_index": 0})


def test_plan_results_come_in_consistent_batches() -> None:
    placements = [p.model_dump() for p in placements_from_world(layout())]
    ok = PlanResult.model_validate(
        {"job_id": "7", "status": "ok", "placements": placements, "batch_index": 1, "batch_count": 2}
    )
    assert ok.schema_version == 1
    assert "batch_count" in refusal(PlanResult, {"job_id": "7", "status": "ok", "batch_index": 2, "batch_count": 2})
    error = {"job_id": "7", "status": "error", "message": "no sink reachable", "placements": placements}
    assert "no placements" in refusal(PlanResult, error)
    assert "status" in refusal(PlanResult, {"job_id": "7", "status": "maybe"})


# ---------------------------------------------------------------------------- export


def test_export_writes_one_schema_per_model(tmp_path: Path) -> None:
    out = tmp_path / "schema"
    run = subprocess.run(
        [sys.executable, "-m", "shared_schema.export", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{m.__name__}.schema.json" for m in MODELS)
    for name in names:
        assert name in run.stdout
    plan = json.loads((out / "PlanRequest.schema.json").read_text())
    assert plan["additionalProperties"] is False
    assert "schema_version" in plan["required"]
    assert plan["$defs"]["Marker"]["properties"]["item"]["description"]


@pytest.mark.parametrize("kind", ["belt-wall", "split", "trial-2", "belt-crossing"])
def test_a_lesson_task_is_posed_as_a_request(kind: str) -> None:
    from training.lessons import HELD_OUT_SEEDS, generate

    task = generate(kind, HELD_OUT_SEEDS[0], 11).task
    request = PlanRequest.from_world(task)
    world = request.to_world()
    entity = task.data[Channel.ENTITY]
    markers = (entity == Entity.SOURCE) | (entity == Entity.SINK)
    assert (world.data[:, markers] == task.data[:, markers]).all()
    # what already stands on a tile (belt-crossing's belt line) is blocked, as the game sends it
    assert ((world.data[Channel.ENTITY] == Entity.BLOCKED) == ((entity != Entity.EMPTY) & ~markers)).all()
    if kind != "belt-crossing":
        assert world == task
