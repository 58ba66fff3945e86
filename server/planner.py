"""The planner: turn a `PlanRequest` into a verified `PlanResponse`, with no web framework.

`Planner(path)` opens an exported policy (`python -m training.export`) on onnxruntime
(the CUDA execution provider when present), and `greedy_path` another for the greedy
rollout where one is given (an ensemble, `training.ensemble`: a better greedy layout for
twice the cost of one rollout, which a search of many rollouts could not afford), and
`plan(request)` answers a request:

1. `prepare`: the request's world, and each sink's best rate (`sink_bounds`), after
   the checks pydantic cannot make: too many sinks for the mimic, a sink item that no
   source carries and no assembling-machine-1 recipe makes, or one whose recipes need
   an item neither a source nor a recipe gives.
2. The expert (`training.expert`) on the same task, for comparison (`expert_score`).
3. The layout, by `options.mode`:
   - `greedy`: one rollout of the greedy policy, its first choice at every step;
   - `search`: the greedy rollout, then the policy's: the layouts of a beam search of width `search_beam`
     (`training.evaluate.beam_rollout`), then `search_rollouts` sampled rollouts in batches of
     `SEARCH_BATCH`, batch j drawing from its own stream seeded by (seed, j). The
     time budget (from the request's arrival, so the wait at the planner's gate counts)
     only stops the search early, between batches or steps, as a safety limit
     (`FINISH_RESERVE_S` before it runs out, so the answer is out in time; sooner when
     others wait at the gate, `Planner._share`): the
     answer depends on the request and seed alone whenever the budget is not hit (a
     budget hit is counted in `Plan.budget_hit`);
   - `expert`: the expert's layout.
   A rollout steps exactly like the environment (training.evaluate's loop): the env's
   own action masks (legal placements that can connect, `training.env.masks`), `choose`,
   the vectorised validator and placement, until "done"
   or size * size // 2 steps. Every candidate is scored in the mimic and the best kept
   (ties: fewer entities, then the earlier candidate, the greedy one first); entities
   that carry nothing are pruned from it when that costs no score.
4. The chosen layout is replayed through the shared validator
   (`shared_schema.placement.check`) before it leaves, so an illegal layout is a bug
   that raises here rather than a ghost in the player's game.

Errors: `PolicyLoadError` (the file is missing, unreadable or not a Factorion policy;
names the file) and `PlanInputError` (the request asks for something impossible; names
the field). Both are plain exceptions: the app maps them to status codes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared_schema import SCHEMA_VERSION
from shared_schema.blueprint import encode_blueprint
from shared_schema.catalog import CATALOG_PATH, load_catalog
from shared_schema.entities import BELT_RATE, Entity, UndergroundEnd
from shared_schema.grid import render_grid
from shared_schema.messages import PlanRequest, PlanResponse, SinkResult, placements_from_world
from shared_schema.placement import Action, apply
from shared_schema.world import Channel, World
from training.env.core import ENDS, PLACEABLE, n_recipes
from training.evaluate import beam_rollout, rollout
from training.onnx_policy import OnnxPolicy
from training.sim import power_mean_score, sink_rates_batch
from training.sim.engine import MAX_SINKS
from training.sim.paths import on_path

log = logging.getLogger(__name__)

SEARCH_BATCH = 8  # sampled rollouts stepped together; fixed, so a batch's stream never depends on timing
DEFAULT_SEARCH_ROLLOUTS = 8  # sampled rollouts besides the greedy one and the beam: about 0.5 s in all at 11x11
DEFAULT_SEARCH_BEAM = 4  # width of the beam search run before the sampled rollouts (0: none)
EXPERT_NAME = "expert"
# what the search leaves of the time budget for the step in flight when its deadline passes
# and for scoring, verifying and encoding the answer (about 15 ms and 20 ms at 11x11 on a quiet
# host; 75 ms left p99 too close to the budget on a busy one); plans never share a core
# (`Planner`'s gate), so this holds under any load
FINISH_RESERVE_S = 0.1


class PolicyLoadError(Exception):
    """The policy file is missing, unreadable or not a policy this server speaks."""


class PlanInputError(ValueError):
    """A request pydantic accepts but no layout can satisfy; `field` is its path in the body."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass
class Plan:
    """A planned response and what the metrics want besides it."""

    response: PlanResponse
    candidates: int  # layouts scored in the mimic
    budget_hit: bool  # the time budget stopped the search early


@dataclass
class _Clock:
    """Per-stage wall-clock times in ms, in the order the stages ran."""

    start: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    _last: float = 0.0

    def __post_init__(self) -> None:
        self._last = self.start

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + 1000 * (now - self._last)
        self._last = now

    def total(self) -> dict[str, float]:
        return {**{k: round(v, 3) for k, v in self.stages.items()}, "total": round(1000 * (self._last - self.start), 3)}


# ---------------------------------------------------------------------------- the task


def _missing_for(item: str, available: frozenset[str], making: tuple[str, ...] = ()) -> list[str]:
    """Items nothing supplies on the way to making `item` from `available` (empty: it can
    be made). A recipe loop back to an item being made counts as missing."""
    if item in available:
        return []
    catalog = load_catalog()
    recipe = catalog.recipe_making(item)
    if recipe is None or item in making:
        return [item]
    missing: list[str] = []
    for ingredient, _ in catalog.recipe(recipe).ingredients:
        missing += [m for m in _missing_for(ingredient, available, (*making, item)) if m not in missing]
    return missing


def _chain_or_top(item: str, sources: list[str]) -> list[int]:
    """The recipe chain the expert would build for `item` (training.expert.infer_chain),
    or else, for a recipe tree, just the recipe making `item`."""
    from training.expert.machines import infer_chain

    chain = infer_chain(item, sources)
    if chain is not None:
        return chain
    top = load_catalog().recipe_making(item)
    assert top is not None  # prepare() refused items nothing makes
    return [top]


def sink_bounds(request: PlanRequest) -> list[float]:
    """Each sink's best rate (items/s), the score's normaliser, in the request's order.

    An item some source carries: a belt's worth (15/s) per source of it, shared by its
    sinks, at most a belt. A made item: the trials' bound (`chain_bound`: one machine per
    recipe of the chain the expert would build, or for a recipe tree one machine making
    the product). Estimates that no layout can beat in the usual case; a score is
    clipped to 1 where one does."""
    from training.lessons.trials import chain_bound

    source_items = [m.item for m in request.sources]
    bounds = []
    for sink in request.sinks:
        n_sources = source_items.count(sink.item)
        if n_sources:
            n_sinks = sum(s.item == sink.item for s in request.sinks)
            bounds.append(min(BELT_RATE, BELT_RATE * n_sources / n_sinks))
        else:
            bounds.append(chain_bound(_chain_or_top(sink.item, source_items)))
    return bounds


def prepare(request: PlanRequest) -> tuple[World, list[float]]:
    """The request's world and each sink's best rate; PlanInputError for a sink the
    sources cannot feed, or more sinks than the mimic reports."""
    if len(request.sinks) > MAX_SINKS:
        raise PlanInputError(("sinks",), f"at most {MAX_SINKS} sinks can be planned for, not {len(request.sinks)}")
    available = frozenset(m.item for m in request.sources)
    have = ", ".join(sorted(available)) or "none"
    catalog = load_catalog()
    for i, sink in enumerate(request.sinks):
        missing = _missing_for(sink.item, available)
        if not missing:
            continue
        if missing == [sink.item] and catalog.recipe_making(sink.item) is None:
            raise PlanInputError(
                ("sinks", i, "item"),
                f"no source carries {sink.item!r} and no assembling-machine-1 recipe makes it (sources carry: {have})",
            )
        raise PlanInputError(
            ("sinks", i, "item"),
            f"{sink.item!r} cannot be made from the sources (they carry: {have}): it needs "
            f"{', '.join(repr(m) for m in missing)}, which no source carries and no assembling-machine-1 recipe makes",
        )
    return request.to_world(catalog), sink_bounds(request)


# ---------------------------------------------------------------------------- replay and pruning


def replay(task: World, layout: World) -> None:
    """Rebuild `layout` from `task` one entity at a time through the shared validator;
    IllegalActionError if any placement is not legal there."""
    world = task.copy()
    built = set(task.entities())
    for kind, x, y in layout.entities():
        if (kind, x, y) in built:
            continue
        tile = layout.data[:, y, x]
        recipe = int(tile[Channel.ITEM]) if kind == Entity.ASSEMBLER else 0
        apply(
            world,
            Action(kind, x, y, layout.facing(x, y), recipe, UndergroundEnd(int(tile[Channel.UNDERGROUND]))),
        )
    if world != layout:  # something of the task was removed or changed
        raise ValueError("the layout does not contain the task unchanged")


def prune(task: World, layout: World, score: Callable[[World], float]) -> World:
    """`layout` without the entities that carry nothing, when that keeps its score."""
    carrying = on_path(layout)
    pruned = layout.copy()
    built = set(task.entities())
    for kind, x, y in layout.entities():
        if (kind, x, y) not in built and not carrying[y, x]:
            pruned.remove(x, y)
    if pruned == layout or score(pruned) < score(layout) - 1e-9:
        return layout
    return pruned


# ---------------------------------------------------------------------------- the planner


def _catalog_sha256() -> str:
    return hashlib.sha256(CATALOG_PATH.read_bytes()).hexdigest()


def _providers() -> list[str]:
    """CUDA when this onnxruntime has it, the CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class FifoGate:
    """At most `slots` holders at once, let in strictly in the order they came
    (`threading.Semaphore` lets a newcomer overtake the threads already waiting: under
    load some plans waited 9 s while others went straight through)."""

    def __init__(self, slots: int) -> None:
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: deque[threading.Event] = deque()

    @property
    def waiting(self) -> int:
        """Threads waiting for a slot now."""
        return len(self._waiting)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            turn = None if self._free and not self._waiting else threading.Event()
            if turn is None:
                self._free -= 1
            else:
                self._waiting.append(turn)
        if turn is not None:
            turn.wait()  # the slot is handed over by the holder that leaves
        try:
            yield
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().set()
                else:
                    self._free += 1


class Planner:
    """An ONNX policy and the search around it. Thread-safe: `plan` keeps no state
    between calls (onnxruntime sessions may run concurrently).

    At most `concurrent_plans` plans run at once (default: one per core the process may
    use); the others wait at a first-come, first-served gate. Plans that share a core
    each run slower and unevenly (16 on 2 cores: some rollouts took 1.3 s where one
    alone takes 40 ms), so a search could not keep its deadline; waiting in line, a
    plan runs at full speed, and its wait counts against its time budget (the `queue`
    timing), so a search that waited long searches less."""

    def __init__(
        self,
        path: Path | str,
        *,
        threads: int | None = None,
        search_rollouts: int = DEFAULT_SEARCH_ROLLOUTS,
        search_beam: int = DEFAULT_SEARCH_BEAM,
        compare_expert: bool = True,
        greedy_path: Path | str | None = None,
        concurrent_plans: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.search_rollouts, self.search_beam = search_rollouts, search_beam
        self.compare_expert = compare_expert
        self.policy = _open(self.path, threads)
        self.name = _name(self.path)
        self.greedy_path = self.path if greedy_path is None else Path(greedy_path)
        same = self.greedy_path.resolve() == self.path.resolve()
        self.greedy_policy = self.policy if same else _open(self.greedy_path, threads)
        self.greedy_name = self.name if same else _name(self.greedy_path)
        if concurrent_plans is not None and concurrent_plans < 1:
            raise ValueError(f"concurrent_plans must be at least 1, not {concurrent_plans}")
        self.concurrent_plans = concurrent_plans or usable_cores()
        self._gate = FifoGate(self.concurrent_plans)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.policy.metadata

    def warm_up(self) -> None:
        """Run one small plan in every mode, so the mimic's and the expert's compiled
        kernels are loaded (or compiled) before the first real request."""
        request = PlanRequest.model_validate(
            {
                "schema_version": SCHEMA_VERSION,
                "region": {"width": 5, "height": 5},
                "sources": [{"x": 0, "y": 2, "facing": "east", "item": "iron-plate"}],
                "sinks": [{"x": 4, "y": 2, "facing": "east", "item": "iron-gear-wheel"}],
            }
        )
        for mode in ("greedy", "search", "expert"):
            self.plan(request.model_copy(update={"options": request.options.model_copy(update={"mode": mode})}))

    def plan(self, request: PlanRequest, arrived: float | None = None) -> Plan:
        """The best layout for `request` (see the module docstring); PlanInputError if
        the request cannot be satisfied. `arrived` (a `time.perf_counter()` reading,
        default now) is when the time budget started."""
        clock = _Clock() if arrived is None else _Clock(start=arrived)
        with self._gate():
            clock.lap("queue")
            return self._plan(request, clock)

    def _plan(self, request: PlanRequest, clock: _Clock) -> Plan:
        options = request.options
        deadline = clock.start + options.time_budget_s - FINISH_RESERVE_S
        task, best = prepare(request)
        clock.lap("validate")

        def score(world: World) -> float:
            return _scores(world.data[None], request, best)[0]

        expert = None
        expert_score = None
        if self.compare_expert or options.mode == "expert":
            expert = _expert(task)
            clock.lap("expert")
            expert_score = score(expert) if expert is not None else 0.0
            clock.lap("mimic")

        budget_hit = False
        if options.mode == "expert":
            candidates = [expert] if expert is not None else []
            layout, name = expert or task, EXPERT_NAME if expert is not None else f"{EXPERT_NAME} (no layout)"
        else:
            worlds, budget_hit = self._candidates(task, options.mode, options.seed, deadline)
            clock.lap("policy")
            scores = _scores(worlds, request, best)
            entities = (worlds[:, Channel.ENTITY] != Entity.EMPTY).sum(axis=(1, 2))
            pick = min(range(len(worlds)), key=lambda i: (-round(scores[i], 9), int(entities[i]), i))
            layout = prune(task, World(worlds[pick].copy()), score)
            candidates, name = list(worlds), self.greedy_name if pick == 0 else self.name
            clock.lap("mimic")
        replay(task, layout)  # the shared validator's word, whatever produced the layout
        clock.lap("verify")

        rates = _rates(layout.data[None], request)[0]
        response = PlanResponse(
            placements=placements_from_world(layout),
            sinks=[
                SinkResult(x=s.x, y=s.y, item=s.item, per_second=float(r), best_per_second=b)
                for s, r, b in zip(request.sinks, rates, best, strict=True)
            ],
            score=power_mean_score(rates, best),
            grid=render_grid(layout),
            blueprint=encode_blueprint(layout),
            policy=name,
            expert_score=expert_score,
        )
        clock.lap("encode")
        response.timings_ms = clock.total()
        return Plan(response, candidates=len(candidates), budget_hit=budget_hit)

    def _share(self, deadline: float) -> float:
        """The search's deadline when others wait at the gate: its remaining time over
        1 + waiting / slots, so a long line is not held up by full-length searches ahead
        of it (which left the last in line its whole budget spent waiting)."""
        now = time.perf_counter()
        return now + max(0.0, deadline - now) / (1 + self._gate.waiting / self.concurrent_plans)

    def _candidates(self, task: World, mode: str, seed: int, deadline: float) -> tuple[np.ndarray, bool]:
        """The greedy policy's rollout first (always run in full), then in search mode the
        policy's beam search and sampled batches in order until they are done or the
        deadline passes."""
        greedy = rollout(self.greedy_policy.heads, task.data[None])
        assert greedy is not None  # no deadline: it always finishes
        found = [greedy]
        if mode == "search":
            deadline = self._share(deadline)
            if self.search_beam:
                beamed = beam_rollout(self.policy.heads, task.data, self.search_beam, deadline=deadline)
                if beamed is None:
                    return greedy, True
                found.append(beamed)
            for j in range((self.search_rollouts + SEARCH_BATCH - 1) // SEARCH_BATCH):
                count = min(SEARCH_BATCH, self.search_rollouts - j * SEARCH_BATCH)
                # numpy seeds are non-negative: the seed's low 64 bits, two's complement for negatives
                rng = np.random.default_rng([seed & (2**64 - 1), j])
                batch = rollout(self.policy.heads, np.repeat(task.data[None], count, axis=0), rng, deadline=deadline)
                if batch is None:
                    return np.concatenate(found), True
                found.append(batch)
        return np.concatenate(found), False


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _name(path: Path) -> str:
    """How responses name a policy: its file name and the start of its digest."""
    return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def _open(path: Path, threads: int | None) -> OnnxPolicy:
    """The policy at `path`, checked to speak this catalog and action layout."""
    if not path.is_file():
        raise PolicyLoadError(f"policy file {path} does not exist (export one with `python -m training.export`)")
    try:
        policy = OnnxPolicy(path, providers=_providers(), threads=threads)
    except Exception as error:  # onnxruntime raises its own types for every kind of broken file
        raise PolicyLoadError(f"policy file {path} is not a readable ONNX model: {error}") from error
    meta = policy.metadata
    expected = {
        "schema_version": SCHEMA_VERSION,
        "placeable": [k.name.lower() for k in PLACEABLE],
        "ends": [e.name.lower() for e in ENDS],
        "recipes": n_recipes(),
        "catalog_sha256": _catalog_sha256(),
    }
    for key, want in expected.items():
        if key not in meta:
            raise PolicyLoadError(f"policy file {path} is not a Factorion policy export: no {key!r} in its metadata")
        if meta[key] != want:
            raise PolicyLoadError(
                f"policy file {path} does not match this server: its {key} is {_short(meta[key])}, "
                f"this server's is {_short(want)} (re-export it from a checkpoint trained on this catalog)"
            )
    return policy


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expert(task: World) -> World | None:
    """The expert's layout, or None; a crash in the comparison must not fail the plan."""
    from training.expert import expert_layout

    try:
        return expert_layout(task)
    except Exception:
        log.exception("the expert failed on a task; reporting no expert layout")
        return None


def _rates(worlds: np.ndarray, request: PlanRequest) -> np.ndarray:
    """float64[B, sinks]: each world's sink rates in the request's sink order (the mimic
    reports them row-major)."""
    rates, _ = sink_rates_batch(worlds)
    row_major = sorted(range(len(request.sinks)), key=lambda i: (request.sinks[i].y, request.sinks[i].x))
    order = np.empty(len(row_major), np.int64)
    order[row_major] = np.arange(len(row_major))
    return rates[:, order]


def _scores(worlds: np.ndarray, request: PlanRequest, best: list[float]) -> list[float]:
    return [power_mean_score(r, best) for r in _rates(worlds, request)]
