"""The planner (server/planner.py): legal, verified, deterministic layouts from an ONNX
policy, the checks a request must pass, and a policy file it refuses to load."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from server.planner import (
    FifoGate,
    PlanInputError,
    Planner,
    PolicyLoadError,
    prepare,
    prune,
    replay,
    sink_bounds,
)
from shared_schema.blueprint import decode_blueprint
from shared_schema.catalog import load_catalog
from shared_schema.entities import Entity
from shared_schema.game import from_game_entity
from shared_schema.messages import PlanOptions, PlanRequest, PlanResponse
from shared_schema.placement import Action, apply, check
from shared_schema.world import Channel, World
from training.lessons import generate
from training.sim import sink_rates_batch

CATALOG = load_catalog()


@pytest.fixture(scope="module")
def planner(tiny_policy: Path) -> Planner:
    return Planner(tiny_policy, threads=1, search_rollouts=10)


def request_for(task: World, **options: Any) -> PlanRequest:
    """The plan request posing a lesson's task (markers and blocked tiles)."""
    return PlanRequest.from_world(task, PlanOptions.model_validate(options))


def rebuilt(request: PlanRequest, response: PlanResponse) -> World:
    """The response's placements built one by one on the request's world through the
    shared validator (each must be legal), checked against its blueprint string."""
    world = request.to_world()
    for placement in response.placements:
        ours = from_game_entity(placement.model_dump())
        recipe = CATALOG.recipe_id(ours.recipe_name) if ours.recipe_name else 0
        action = Action(ours.kind, ours.x, ours.y, ours.facing, recipe, ours.underground_end)
        assert check(world, action) is None, placement
        apply(world, action)
    if response.placements:
        from_blueprint = decode_blueprint(response.blueprint, world.width, world.height, origin=(0, 0))
        game = world.data.copy()
        game[:, np.isin(world.data[Channel.ENTITY], (Entity.SOURCE, Entity.SINK, Entity.BLOCKED))] = 0
        assert np.array_equal(from_blueprint.data[Channel.ENTITY], game[Channel.ENTITY])
        assert np.array_equal(from_blueprint.data[Channel.FACING], game[Channel.FACING])
    return world


def assert_verified(request: PlanRequest, response: PlanResponse) -> None:
    """Legal, and the mimic gives the rates the response reports."""
    world = rebuilt(request, response)
    rates, count = sink_rates_batch(world.data[None])
    by_tile = dict(zip(sorted((s.y, s.x) for s in request.sinks), rates[0, : count[0]], strict=True))
    for sink in response.sinks:
        assert sink.per_second == pytest.approx(by_tile[(sink.y, sink.x)])
    assert 0 <= response.score <= 1


LESSONS = [("one-belt", 3), ("belt-wall", 5), ("split", 1), ("machine", 2), ("trial-1", 4)]


@pytest.mark.parametrize("mode", ["greedy", "search", "expert"])
@pytest.mark.parametrize(("kind", "seed"), LESSONS)
def test_every_mode_gives_a_legal_verified_layout(planner: Planner, mode: str, kind: str, seed: int) -> None:
    request = request_for(generate(kind, seed, 8).task, mode=mode, seed=1, time_budget_s=60)  # never cut short
    plan = planner.plan(request)
    assert_verified(request, plan.response)
    assert plan.response.expert_score is not None
    assert plan.response.policy == ("expert" if mode == "expert" else planner.name)
    # search: the greedy rollout, the beam's layouts (at least one) and the 10 sampled rollouts
    assert plan.candidates >= 12 if mode == "search" else plan.candidates == 1
    assert {"validate", "expert", "mimic", "verify", "encode", "total"} <= set(plan.response.timings_ms)
    if mode == "expert":
        assert plan.response.score == pytest.approx(plan.response.expert_score)


def test_expert_mode_solves_what_the_expert_solves(planner: Planner) -> None:
    lesson = generate("belt-wall", 5, 8)
    plan = planner.plan(request_for(lesson.task, mode="expert"))
    assert plan.response.score == pytest.approx(1.0)
    assert [s.best_per_second for s in plan.response.sinks] == list(lesson.best)


def _without_timings(response: PlanResponse) -> dict[str, Any]:
    return response.model_dump(exclude={"timings_ms"})


def test_same_request_and_seed_same_answer(planner: Planner) -> None:
    request = request_for(generate("split", 6, 8).task, mode="search", seed=42, time_budget_s=60)
    first, second = planner.plan(request), planner.plan(request)
    assert not first.budget_hit and not second.budget_hit
    assert _without_timings(first.response) == _without_timings(second.response)
    # a fresh planner (a restarted server) answers the same
    restarted = Planner(planner.path, search_rollouts=planner.search_rollouts, search_beam=planner.search_beam)
    again = restarted.plan(request)
    assert _without_timings(again.response) == _without_timings(first.response)


def test_search_never_scores_below_greedy(planner: Planner) -> None:
    for kind, seed in LESSONS:
        task = generate(kind, seed, 8).task
        greedy = planner.plan(request_for(task, mode="greedy")).response.score
        search = planner.plan(request_for(task, mode="search", seed=3, time_budget_s=60)).response.score
        assert search >= greedy - 1e-12, kind


def test_the_time_budget_cuts_the_search_but_the_answer_stays_legal(planner: Planner) -> None:
    request = request_for(generate("machine", 2, 8).task, mode="search", time_budget_s=1e-6)
    plan = planner.plan(request)
    assert plan.budget_hit and plan.candidates == 1  # only the greedy rollout, which always runs
    assert_verified(request, plan.response)


@pytest.mark.parametrize("slots", [1, 2])
def test_the_gate_lets_plans_in_first_come_first_served_and_never_more_than_its_slots(slots: int) -> None:
    gate = FifoGate(slots)
    entered: list[int] = []
    lock = threading.Lock()
    holding, most = 0, 0

    def hold(i: int) -> None:
        nonlocal holding, most
        with gate():
            with lock:
                entered.append(i)
                holding += 1
                most = max(most, holding)
            time.sleep(0.02)
            with lock:
                holding -= 1

    with contextlib.ExitStack() as taken:  # every slot taken: everyone below waits in line
        for _ in range(slots):
            taken.enter_context(gate())
        threads = []
        for i in range(6):
            threads.append(threading.Thread(target=hold, args=(i,)))
            threads[-1].start()
            while gate.waiting < i + 1:  # in line before the next one comes
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=10)
    assert 1 <= most <= slots and gate.waiting == 0
    if slots == 1:  # with more slots, two let in together may reach the list in either order
        assert entered == list(range(6))
    else:
        assert sorted(entered) == list(range(6))


def test_a_slot_comes_back_when_its_plan_fails() -> None:
    gate = FifoGate(1)
    with pytest.raises(RuntimeError), gate():
        raise RuntimeError("the plan failed")
    with gate():  # would wait forever if the slot were lost
        assert gate.waiting == 0


def test_a_refused_request_does_not_keep_the_planners_only_slot(tiny_policy: Path) -> None:
    planner = Planner(tiny_policy, threads=1, concurrent_plans=1)
    with pytest.raises(PlanInputError):
        planner.plan(_markers(["copper-plate"], ["iron-plate"]))
    assert planner.plan(request_for(generate("one-belt", 1, 8).task, mode="greedy")).response.score >= 0
    with pytest.raises(ValueError, match="concurrent_plans"):
        Planner(tiny_policy, concurrent_plans=0)


def test_time_spent_waiting_counts_against_the_search_budget(planner: Planner) -> None:
    request = request_for(generate("machine", 2, 8).task, mode="search", time_budget_s=5)
    plan = planner.plan(request, arrived=time.perf_counter() - 5)  # its budget went by in line
    assert plan.budget_hit and plan.candidates == 1  # the greedy rollout alone, which always runs
    assert plan.response.timings_ms["queue"] >= 5000
    assert_verified(request, plan.response)


def test_the_search_gives_way_to_plans_waiting_behind_it(tiny_policy: Path) -> None:
    planner = Planner(tiny_policy, threads=1, concurrent_plans=1)
    deadline = time.perf_counter() + 10
    assert planner._share(deadline) == pytest.approx(deadline, abs=0.1)  # nobody waits: the whole budget
    leave = threading.Event()

    def wait_in_line() -> None:
        with planner._gate():
            leave.wait(10)

    with planner._gate():
        waiter = threading.Thread(target=wait_in_line)
        waiter.start()
        while planner._gate.waiting < 1:
            time.sleep(0.001)
        # one waiting for the one slot: half the time left
        assert planner._share(deadline) - time.perf_counter() == pytest.approx(10 / 2, abs=0.1)
    leave.set()
    waiter.join(timeout=10)


def test_sinks_answer_in_the_request_order() -> None:
    # the mimic reports sinks row-major; the request lists the lower one first
    request = PlanRequest.model_validate(
        {
            "schema_version": 1,
            "region": {"width": 3, "height": 2},
            "sources": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}],
            "sinks": [
                {"x": 1, "y": 1, "facing": "east", "item": "iron-plate"},
                {"x": 1, "y": 0, "facing": "east", "item": "iron-plate"},
            ],
            "options": {"mode": "expert"},
        }
    )
    from server.planner import _rates

    world, best = prepare(request)
    assert best == [7.5, 7.5]  # one source's belt shared by two sinks
    assert _rates(world.data[None], request)[0].tolist() == [0.0, 15.0]


def test_sink_bounds_agree_with_the_trials() -> None:
    lesson = generate("trial-2", 9, 11)
    assert sink_bounds(request_for(lesson.task)) == pytest.approx(list(lesson.best))


def _markers(sources: list[str], sinks: list[str]) -> PlanRequest:
    return PlanRequest.model_validate(
        {
            "schema_version": 1,
            "region": {"width": 12, "height": 12},
            "sources": [{"x": 0, "y": i, "facing": "east", "item": item} for i, item in enumerate(sources)],
            "sinks": [{"x": 11, "y": i % 12, "facing": "east", "item": item} for i, item in enumerate(sinks)],
        }
    )


@pytest.mark.parametrize(
    ("sources", "sinks", "field", "message"),
    [
        (["copper-plate"], ["iron-plate"], ("sinks", 0, "item"), "no source carries 'iron-plate' and no assembling"),
        (["iron-plate"], ["iron-plate", "copper-cable"], ("sinks", 1, "item"), "needs 'copper-plate'"),
        (["copper-plate"], ["electronic-circuit"], ("sinks", 0, "item"), "needs 'iron-plate'"),
    ],
)
def test_sinks_the_sources_cannot_feed_are_refused(
    sources: list[str], sinks: list[str], field: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(PlanInputError, match=message) as error:
        prepare(_markers(sources, sinks))
    assert error.value.field == field


def test_more_sinks_than_the_mimic_reports_are_refused() -> None:
    request = PlanRequest.model_validate(
        {
            "schema_version": 1,
            "region": {"width": 17, "height": 2},
            "sources": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}],
            "sinks": [{"x": x, "y": 1, "facing": "south", "item": "iron-plate"} for x in range(17)],
        }
    )
    with pytest.raises(PlanInputError, match="at most 16 sinks") as error:
        prepare(request)
    assert error.value.field == ("sinks",)


def test_replay_refuses_an_illegal_layout() -> None:
    request = _markers(["iron-plate"], ["iron-plate"])
    task = request.to_world()
    layout = task.copy()
    layout.data[:, 0, 0] = layout.data[:, 0, 1]  # the source's tile overwritten: not the task any more
    with pytest.raises(ValueError, match="task"):
        replay(task, layout)
    layout = task.copy()
    layout.data[Channel.ENTITY, 5, 5] = Entity.ASSEMBLER  # a lone tile of a machine, no recipe
    with pytest.raises(ValueError):
        replay(task, layout)


def test_prune_drops_what_carries_nothing_and_keeps_the_score() -> None:
    request = PlanRequest.model_validate(
        {
            "schema_version": 1,
            "region": {"width": 4, "height": 2},
            "sources": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}],
            "sinks": [{"x": 3, "y": 0, "facing": "east", "item": "iron-plate"}],
        }
    )
    task = request.to_world()
    layout = task.copy()
    for x in (1, 2):
        layout.place(Entity.BELT, x, 0, facing=1)
    useful = layout.copy()
    layout.place(Entity.BELT, 2, 1, facing=3)  # idle

    def score(world: World) -> float:
        return float(sink_rates_batch(world.data[None])[0][0, 0])

    assert prune(task, layout, score) == useful


# ---------------------------------------------------------------------------- loading


def test_a_missing_policy_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match=f"policy file {tmp_path / 'nope.onnx'} does not exist"):
        Planner(tmp_path / "nope.onnx")


def test_a_corrupt_policy_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(PolicyLoadError, match=f"policy file {path} is not a readable ONNX model"):
        Planner(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("catalog_sha256", None, "not a Factorion policy export"), ("catalog_sha256", '"0"', "does not match")],
)
def test_a_policy_for_another_catalog_is_refused(
    tiny_policy: Path, tmp_path: Path, key: str, value: str | None, message: str
) -> None:
    model = onnx.load(str(tiny_policy))
    props = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    if value is not None:
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "other.onnx"
    onnx.save(model, str(path))
    with pytest.raises(PolicyLoadError, match=message):
        Planner(path)


def test_sampled_rollouts_follow_their_seed(planner: Planner) -> None:
    from training.evaluate import rollout

    tasks = np.repeat(generate("machine", 2, 8).task.data[None], 4, axis=0)
    heads = planner.policy.heads
    a, b = (rollout(heads, tasks, np.random.default_rng(s)) for s in (0, 1))
    assert a is not None and b is not None
    again = rollout(heads, tasks, np.random.default_rng(0))
    assert again is not None and np.array_equal(a, again)
    assert not np.array_equal(a, b)
    assert rollout(heads, tasks, np.random.default_rng(0), deadline=0.0) is None


def test_a_task_the_expert_cannot_build_still_gets_an_answer(planner: Planner) -> None:
    # an inserter needs two made ingredients (circuits and gears): a recipe tree, which the expert does not build
    request = _markers(["iron-plate", "copper-plate"], ["inserter"])
    for mode in ("expert", "greedy"):
        plan = planner.plan(request.model_copy(update={"options": request.options.model_copy(update={"mode": mode})}))
        assert plan.response.expert_score == 0.0
        assert_verified(request, plan.response)
    assert plan.response.sinks[0].best_per_second > 0  # the bound of one machine making inserters
    expert = planner.plan(request.model_copy(update={"options": request.options.model_copy(update={"mode": "expert"})}))
    assert expert.response.placements == [] and expert.response.policy == "expert (no layout)"


def test_a_greedy_policy_of_its_own_answers_greedy_plans_and_leads_the_search(
    tiny_policy: Path, tmp_path: Path
) -> None:
    import torch

    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(1)
    other = tmp_path / "other.onnx"
    export(Policy(ModelConfig(width=16, conv_blocks=1)).eval(), other, 11, source="other.pt")
    both = Planner(tiny_policy, greedy_path=other, threads=1, search_rollouts=4, compare_expert=False)
    alone = Planner(other, threads=1, search_rollouts=4, compare_expert=False)
    assert both.greedy_name == alone.name != both.name
    for kind, seed in LESSONS:
        task = generate(kind, seed, 8).task
        greedy, expected = (p.plan(request_for(task, mode="greedy")).response for p in (both, alone))
        assert greedy.placements == expected.placements and greedy.policy == alone.name, kind
        search = both.plan(request_for(task, mode="search", seed=3, time_budget_s=60)).response
        assert search.score >= expected.score - 1e-12, kind  # the greedy policy's layout is a candidate
    assert Planner(tiny_policy, greedy_path=tiny_policy).greedy_policy is not None
    with pytest.raises(PolicyLoadError, match=f"policy file {tmp_path / 'gone.onnx'} does not exist"):
        Planner(tiny_policy, greedy_path=tmp_path / "gone.onnx")
