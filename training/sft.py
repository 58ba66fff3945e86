"""Supervised pre-training: imitate the lessons' reference solutions, one placement at a time.

    python -m training.sft [--config sft.yaml] [--steps N] [--minutes M] [--init CKPT] [--name NAME] ...

A sample is a lesson's task with part of its reference solution already built (an
order of the solution's entities cut at a uniformly drawn length: mostly flow order,
nearest the sources first, as a layout is built along its routes; else a random order).
The loss has two parts, both under the env's own action mask of the sample's world
(`training.env.masks.action_masks`, through `FactoredDistribution`), so the policy
learns only among legal actions, as it will act in the env ("done" is never masked here:
the envs' done rule is an experiment, it would need the mimic on every sample, and the
targets say "done" only once the solution is built, where the rule allows it anyway):
- the tile: -log of the probability of the right tiles (the anchors of the entities
  next in the order, ties included; in a random order, any assembling machine or
  splitter still to build, else any remaining entity; "done" when all are built). So
  wherever a partial layout lacks its machine, even one the policy built in its own
  order, the machine is what comes next;
- the kind, facing, recipe and end heads: cross-entropy at the anchor of every entity
  still to build, not only the next one. One forward pass so teaches a dozen
  placements: the heads learn the whole layout the expert would finish.

Lessons come from a pool (`pool` per kind, training seeds only: `supply.training_seed`
skips `HELD_OUT_SEEDS`); each step replaces `refresh` of them with fresh seeds, so
generation costs a few milliseconds per step and the stream still moves on (a
lesson serves about pool * kinds / refresh steps). For `expert_kinds` (the machine
lessons) the solution imitated is the expert's own layout (`expert_solution`): their
generator puts the machine at random, the expert by a rule the policy can learn; the
expert is slow, so these lessons are refreshed at `expert_refresh` of the rate. For
`hub_kinds` (split, machine) the solution instead goes through a splitter or machine put
at random among the spots from which the expert's layout solves the lesson
(`training.recovery.hub_choices`: often a dozen), and on the bare task every one of those
spots is a right tile: the expert's rule picks one, and the policy need not find which.
With `recovery` > 0, every `recovery_every` steps the policy plays greedy rollouts on
`recovery_lessons` lessons of the pool, and that share of samples comes from the states
its failed rollouts reached, each with a way to solve the lesson from there
(`training.recovery`, DAgger). Every
`val_every` steps the policy plays greedy rollouts on `val_seeds` validation seeds per
kind (`training.evaluate`, the same code as `python -m training.evaluate`); `best.pt`
keeps the best mean score, `latest.pt` the last state. Configuration: `SFTConfig`, from its defaults < a YAML
file (`--config`) < command-line flags.

Metrics (`runs/<name>/metrics.csv` and TensorBoard, against samples seen):
- losses/loss: the batch's loss; losses/tile: its tile part;
- acc/tile: share of samples whose greedy tile is the anchor of an entity still to
  build, or "done" when none is left; acc/next: ... of an entity next in the order;
- acc/kind, acc/facing, acc/recipe, acc/end: share of the anchors still to build where
  that head's greedy choice, given the right kind, is the solution's (over anchors that
  read it);
- charts/samples_per_s: samples trained per second of wall time since the last log;
- charts/learning_rate: the step's learning rate (`lr_decay`);
- charts/batch_fraction: share of that time the step waited for its batch (batches are
  built in a background thread while the previous step trains);
- val/mean_score and val/<kind>: greedy rollouts' mean normalised score on the validation seeds;
- recovery/greedy_solved: share of the pool lessons last rolled out that greedy solved;
  recovery/found_per_lesson: recovery lessons found per lesson rolled out;
  recovery/kept: recovery lessons held; recovery/seconds: time the collection took.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from training.checkpoint import CheckpointError, load, save
from training.config import ConfigError, check_lessons, check_precision, layered
from training.env.core import ENDS, PLACEABLE
from training.env.masks import action_masks
from training.env.supply import Prepared, prepare, solution_parts, training_seed
from training.evaluate import SOLVED, score_layout, torch_heads, validation
from training.expert import HUBS, expert_layout
from training.hints import distance_hints
from training.lessons import HELD_OUT_SEEDS, KINDS, TRIAL_KINDS
from training.model import (
    ASSEMBLER,
    UNDERGROUND,
    FactoredDistribution,
    ModelConfig,
    Policy,
    precision_autocast,
    resolve_device,
)
from training.recovery import collect, hub_choices
from training.runs import Run

LESSON_KINDS = tuple(k for k in KINDS if k not in TRIAL_KINDS)  # trials have no solution to imitate
HUB_KINDS = tuple(PLACEABLE.index(hub) for hub in HUBS)  # as the env's action kinds


@dataclass
class SFTConfig:
    """Supervised pre-training on the lessons' reference solutions."""

    name: str = ""
    """Run folder name under `root` (default: sft-<date>-<time>)."""
    root: Path = Path("runs")
    """Where run folders go."""
    size: int = 11
    """Grid side of the lessons."""
    kinds: tuple[str, ...] = LESSON_KINDS
    """Lesson kinds to imitate (trials have no reference solution)."""
    steps: int = 5000
    """Optimizer steps (the run also stops after `minutes`)."""
    minutes: float = 0.0
    """Wall-time limit in minutes (0: none)."""
    batch_size: int = 128
    """Samples per optimizer step."""
    lr: float = 1e-3
    """Adam learning rate."""
    lr_decay: bool = True
    """Decay the learning rate linearly to 5% of `lr` over the run (by steps or by
    `minutes`, whichever ends it first)."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    pool: int = 64
    """Lessons per kind kept for sampling."""
    flow_order: float = 0.75
    """Share of samples built in flow order (nearest the sources first) rather than in a random order."""
    refresh: int = 4
    """Pool lessons replaced by fresh training seeds each step (0: a fixed pool)."""
    expert_kinds: tuple[str, ...] = ("machine", "machine-row")
    """Kinds whose imitated solution is the expert's own layout (`expert_solution`), not the generator's."""
    hub_kinds: tuple[str, ...] = ()
    """Kinds whose lessons take, as their solution, the expert's layout through a splitter or
    machine placed at random among those that solve it (`training.recovery.hub_choices`);
    where nothing is built yet, any of those placements is a right tile."""
    expert_refresh: float = 0.25
    """Rate at which lessons of `expert_kinds` are refreshed, relative to `refresh` (the expert
    takes a tenth of a second or more per lesson)."""
    recovery: float = 0.0
    """Share of samples drawn from recovery lessons (`training.recovery`: states the policy's
    own greedy rollouts reach, with a way to solve the lesson from there); 0: none."""
    recovery_every: int = 100
    """Steps between collections of recovery lessons."""
    recovery_lessons: int = 96
    """Pool lessons rolled out greedily per collection."""
    recovery_keep: int = 1024
    """Recovery lessons kept (the oldest are replaced)."""
    val_every: int = 250
    """Validate (greedy rollouts on the validation seeds) every this many steps, and at the end."""
    val_seeds: int = 5
    """Validation seeds (`training.lessons.VALIDATION_SEEDS`) per kind."""
    log_every: int = 25
    """Log metrics every this many steps."""
    seed: int = 0
    """Seed of the sample stream and the network's initial weights."""
    threads: int = 2
    """torch CPU threads."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda or cuda:N: where the network trains (the batches
    are built on the CPU either way)."""
    precision: str = "auto"
    """auto, fp32 or bf16 (as `training.ppo`'s): bf16 autocast of the network's trunk, by
    default where the CPU runs bf16 natively (AMX or AVX-512 BF16)."""
    init: Path | None = None
    """Start from this checkpoint's weights (its model config replaces `model`)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Network sizes (`training.model.ModelConfig`)."""


def parse_config(argv: list[str] | None = None) -> SFTConfig:
    """SFTConfig from its defaults, then `--config FILE.yaml`, then the other flags."""
    return layered(SFTConfig, argv, "python -m training.sft", __doc__.split("\n\n")[0])


def solution_actions(prepared: Prepared) -> np.ndarray:
    """int64[n, 5]: the env action placing each reference solution entity, in
    `lesson.solution_entities` order (the order of `prepared.parts`)."""
    lesson = prepared.lesson
    assert lesson.solution is not None, f"{lesson.kind} has no reference solution"
    data, size = lesson.solution.data, lesson.task.width
    rows = []
    for entity, x, y in lesson.solution_entities:
        kind = PLACEABLE.index(entity)
        facing = 0 if entity == Entity.ASSEMBLER else int(data[Channel.FACING, y, x])
        recipe = int(data[Channel.ITEM, y, x]) if entity == Entity.ASSEMBLER else 0
        end = ENDS.index(data[Channel.UNDERGROUND, y, x]) if entity == Entity.UNDERGROUND else 0
        rows.append((y * size + x, kind, facing, recipe, end))
    return np.array(rows, np.int64).reshape(-1, 5)


def flow_keys(prepared: Prepared) -> np.ndarray:
    """float[n], in `solution_actions` order: sorting by it builds the assembling machines
    and splitters first (the choices everything else routes to), then the rest the way
    items flow, nearest the sources first (`training.hints`, over the task's free tiles)."""
    closeness = distance_hints(prepared.lesson.task.data[None])[0, 1].ravel()
    assert prepared.lesson.solution is not None
    kinds = prepared.lesson.solution.data[Channel.ENTITY].ravel()
    return np.array([-closeness[part].max() - 2.0 * (kinds[part[0]] in HUBS) for part in prepared.parts])


def expert_solution(prepared: Prepared) -> Prepared:
    """`prepared` with the expert's own layout as its solution, when it has one that solves
    the lesson. The machine lessons' generator puts the machine anywhere it wires up, so
    where it stands cannot be told from the task; the expert puts it by a rule (the free
    spot nearest the markers that wires up), which a policy can learn."""
    lesson = prepared.lesson
    layout = expert_layout(lesson.task, lesson.protected)
    if layout is None or score_layout(lesson, layout) < SOLVED:
        return prepared
    return with_solution_layout(prepared, layout)


def with_solution_layout(prepared: Prepared, layout: World) -> Prepared:
    """`prepared` with `layout` as its lesson's solution."""
    relabelled = replace(prepared.lesson, solution=layout)
    return replace(prepared, lesson=relabelled, parts=solution_parts(relabelled))


# a lesson, its solution actions, their flow keys, and the actions placing its hub anywhere
# that solves it (`hub_choices`; none unless its kind is in `hub_kinds`)
Slot = tuple[Prepared, np.ndarray, np.ndarray, np.ndarray]
NO_HUB_CHOICES = np.zeros((0, 5), np.int64)


def to_slot(prepared: Prepared, hubs: np.ndarray = NO_HUB_CHOICES) -> Slot:
    return prepared, solution_actions(prepared), flow_keys(prepared), hubs


class LessonPool:
    """`per_kind` lessons of each kind with their solution actions and flow keys (the
    expert's layout for `expert_kinds`); `refresh(n)` swaps about n of them for lessons
    of fresh training seeds (never held out), those of `expert_kinds` at `expert_refresh`
    of the rate."""

    def __init__(
        self,
        kinds: tuple[str, ...],
        size: int,
        per_kind: int,
        rng: np.random.Generator,
        expert_kinds: tuple[str, ...] = (),
        expert_refresh: float = 1.0,
        hub_kinds: tuple[str, ...] = (),
    ) -> None:
        self.kinds, self.size, self.rng = kinds, size, rng
        self.expert_kinds, self.expert_refresh, self.hub_kinds = expert_kinds, expert_refresh, hub_kinds
        self.next_seed = int(rng.integers(1_000_000))  # where this run's stream of training seeds starts
        self.seeds_used: set[int] = set()
        self.slots: list[Slot] = [self._fresh(kind) for kind in kinds for _ in range(per_kind)]
        self.recoveries: list[Slot] = []
        self.recovered = 0  # recovery lessons added so far

    def add_recoveries(self, found: list[Prepared], keep: int) -> None:
        """Keep the recovery lessons `found`, replacing the oldest beyond `keep`."""
        for prepared in found:
            slot = to_slot(prepared)
            if len(self.recoveries) < keep:
                self.recoveries.append(slot)
            else:  # one item assignment: safe while the prefetch thread reads the list
                self.recoveries[self.recovered % keep] = slot
            self.recovered += 1

    def _fresh(self, kind: str) -> Slot:
        seed = training_seed(self.next_seed)
        self.next_seed += 1
        if seed in HELD_OUT_SEEDS:  # training_seed's promise, checked where it matters
            raise AssertionError(f"training drew held-out seed {seed}")
        self.seeds_used.add(seed)
        prepared = prepare(kind, seed, self.size)
        if kind in self.hub_kinds:
            choices = hub_choices(prepared)
            if choices:
                _, layout = choices[int(self.rng.integers(len(choices)))]
                return to_slot(with_solution_layout(prepared, layout), np.stack([action for action, _ in choices]))
        if kind in self.expert_kinds:
            prepared = expert_solution(prepared)
        return to_slot(prepared)

    def refresh(self, count: int) -> None:
        for i in self.rng.choice(len(self.slots), min(count, len(self.slots)), replace=False):
            kind = self.slots[i][0].lesson.kind
            slow = kind in self.expert_kinds or kind in self.hub_kinds
            if not slow or self.rng.random() < self.expert_refresh:
                self.slots[i] = self._fresh(kind)


def draw_sample(
    prepared: Prepared, actions: np.ndarray, rng: np.random.Generator, keys: np.ndarray | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """(world int16[6, H, W], index of the target in `actions` or -1 for "done", indices
    of the entities still to build): the task with a random prefix of an order of the
    solution built: by `keys` (ties in random order) when given, else a random order."""
    n = len(actions)
    order = rng.permutation(n) if keys is None else np.lexsort((rng.random(n), keys))
    built = int(rng.integers(n + 1))
    world = prepared.lesson.task.data.copy()
    if built:
        assert prepared.lesson.solution is not None
        solution = prepared.lesson.solution.data.reshape(world.shape[0], -1)
        flat = world.reshape(world.shape[0], -1)
        tiles = np.concatenate([prepared.parts[i] for i in order[:built]])
        flat[:, tiles] = solution[:, tiles]
    return world, int(order[built]) if built < n else -1, order[built:]


@dataclass
class Batch:
    """worlds int16[B, 6, H, W], their distance hints float32[B, 7, H, W], masks
    int8[B, 6, 4, T]; next bool[B, T + 1]: the right tile choices (the anchors of the
    entities next in the sample's order, ties included, or "done" when none is left);
    todo bool[B, T + 1]: anchors of every entity still to build (or "done");
    labels int64[B, T, 4]: kind, facing, recipe and end of the entity still to build at
    each anchor, where it is legal now (kind -1 elsewhere)."""

    worlds: np.ndarray
    hints: np.ndarray
    masks: np.ndarray
    next: np.ndarray
    todo: np.ndarray
    labels: np.ndarray


def make_batch(
    pool: LessonPool, batch_size: int, rng: np.random.Generator, flow_order: float = 0.0, recovery: float = 0.0
) -> Batch:
    """A batch of samples (`draw_sample`), a `recovery` share of them from the pool's recovery lessons."""
    tiles = pool.size * pool.size
    worlds = []
    next_ = np.zeros((batch_size, tiles + 1), bool)
    todo = np.zeros((batch_size, tiles + 1), bool)
    labels = np.full((batch_size, tiles, 4), -1, np.int64)
    recovered = list(pool.recoveries)  # a snapshot: the training thread adds to it
    for b in range(batch_size):
        if recovered and rng.random() < recovery:
            prepared, actions, keys, hub_spots = recovered[int(rng.integers(len(recovered)))]
        else:
            prepared, actions, keys, hub_spots = pool.slots[int(rng.integers(len(pool.slots)))]
        in_flow = rng.random() < flow_order
        world, target, remaining = draw_sample(prepared, actions, rng, keys if in_flow else None)
        worlds.append(world)
        if target < 0:
            next_[b, tiles] = todo[b, tiles] = True
            continue
        left = actions[remaining]
        todo[b, left[:, 0]] = True
        if in_flow:
            next_[b, left[keys[remaining] == keys[target], 0]] = True
        else:  # a hub still to build comes before the rest, whatever stands already
            hubs = np.isin(left[:, 1], HUB_KINDS)
            next_[b, left[hubs, 0] if hubs.any() else left[:, 0]] = True
        labels[b, left[:, 0]] = left[:, 1:]
        if len(hub_spots) and len(remaining) == len(actions):  # nothing built: the hub is right at any of its spots
            labels[b, hub_spots[:, 0]] = hub_spots[:, 1:]  # there, what comes next is the hub
            next_[b, hub_spots[:, 0]] = todo[b, hub_spots[:, 0]] = True
    stacked = np.stack(worlds)
    masks = action_masks(stacked)
    rows, tiles_ = np.nonzero(labels[..., 0] >= 0)
    kind, facing = labels[rows, tiles_, 0], labels[rows, tiles_, 1]
    illegal = masks[rows, kind, facing, tiles_] == 0  # e.g. an underground exit before its entrance
    labels[rows[illegal], tiles_[illegal], 0] = -1
    return Batch(stacked, distance_hints(stacked), masks, next_, todo, labels)


def loss_and_metrics(policy: Policy, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The imitation loss of a batch and its accuracies (see the module docstring), on
    the policy's device."""
    device = next(policy.parameters()).device

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=device)

    features = policy.features(tensor(batch.worlds), tensor(batch.hints))
    dist = FactoredDistribution.from_features(policy, features, tensor(batch.masks))
    # the tile: any of the right choices is right (log of their total probability)
    log_tile = torch.log_softmax(dist.tile_logits, dim=-1)
    right = tensor(batch.next)
    tile_loss = -torch.logsumexp(log_tile.masked_fill(~right, -torch.inf), dim=-1).mean()
    # the other heads: at every anchor of an entity still to build, not only the next one
    labels = tensor(batch.labels)
    rows, tiles = torch.nonzero(labels[..., 0] >= 0, as_tuple=True)
    kind, facing, recipe, end = labels[rows, tiles].unbind(-1)
    kind_logits, facing_logits, recipe_logits, end_logits = dist.conditionals(tiles, kind, rows)
    machine, underground = kind == ASSEMBLER, kind == UNDERGROUND
    parts = {
        "kind": (kind_logits, kind, torch.ones_like(machine)),
        "facing": (facing_logits, facing, ~machine),
        "recipe": (recipe_logits, recipe, machine),
        "end": (end_logits, end, underground),
    }
    head_loss = torch.zeros((), device=device)
    for logits, want, read in parts.values():
        if read.any():
            head_loss = head_loss + F.cross_entropy(logits[read], want[read], reduction="sum")
    loss = tile_loss + head_loss / max(len(rows), 1)
    with torch.no_grad():
        greedy_tile = dist.tile_logits.argmax(-1)
        pick = torch.arange(len(greedy_tile)), greedy_tile
        metrics = {
            "losses/loss": float(loss),
            "losses/tile": float(tile_loss),
            "acc/tile": float(tensor(batch.todo)[pick].float().mean()),
            "acc/next": float(right[pick].float().mean()),
        }
        for name, (logits, want, read) in parts.items():
            if read.any():
                metrics[f"acc/{name}"] = float((logits.argmax(-1) == want)[read].float().mean())
    return loss, metrics


class ImitationStream:
    """Batches of the reference imitation for another trainer to mix in (PPO's
    `imitation_coef`, self-imitation's `expert_weight`): a `LessonPool` of `kinds`
    (`per_kind` lessons each) refreshed by one lesson per batch, its batches built one
    ahead in a background thread, which alone touches the pool and `rng`."""

    def __init__(
        self,
        kinds: tuple[str, ...],
        size: int,
        batch_size: int,
        rng: np.random.Generator,
        per_kind: int = 32,
        expert_kinds: tuple[str, ...] = SFTConfig.expert_kinds,
    ) -> None:
        self.pool = LessonPool(kinds, size, per_kind, rng, expert_kinds, SFTConfig.expert_refresh)
        self.batch_size = batch_size
        self.prefetch = ThreadPoolExecutor(1)
        self.coming = self.prefetch.submit(self._build)

    def _build(self) -> Batch:
        self.pool.refresh(1)
        return make_batch(self.pool, self.batch_size, self.pool.rng, SFTConfig.flow_order)

    def next(self) -> Batch:
        batch = self.coming.result()
        self.coming = self.prefetch.submit(self._build)
        return batch

    def close(self) -> None:
        self.prefetch.shutdown(cancel_futures=True)


class RunLength(Protocol):
    """What ends a run: `steps` optimizer steps or `minutes` of wall time (0: none)."""

    steps: int
    minutes: float


def run_progress(step: int, seconds: float, config: RunLength) -> float:
    """How far the run is, 0 to 1: by steps, or by wall time when `minutes` ends it sooner."""
    by_time = seconds / (60 * config.minutes) if config.minutes > 0 else 0.0
    return min(1.0, max(step / config.steps, by_time))


def train(config: SFTConfig) -> dict[str, Any]:
    """Run SFT as configured; returns the summary it also writes to the run folder."""
    check_lessons(config.size, config.kinds, config.val_seeds)
    check_precision(config.precision)
    if not 0.0 <= config.recovery <= 1.0:
        raise ConfigError(f"recovery is a share of samples, 0 to 1, not {config.recovery}")
    if min(config.recovery_every, config.recovery_lessons, config.recovery_keep) < 1:
        raise ConfigError("recovery_every, recovery_lessons and recovery_keep must be at least 1")
    for kinds in (config.expert_kinds, config.hub_kinds):
        if kinds:
            check_lessons(config.size, kinds)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    if config.init is not None:
        policy, _ = load(config.init, device)
        config = replace(config, model=policy.config)
    else:
        policy = Policy(config.model).to(device)
    name = config.name or time.strftime("sft-%Y%m%d-%H%M%S")
    run = Run.create(name, replace(config, name=name), root=config.root)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    autocast = precision_autocast(device, config.precision)
    state = {"size": config.size, "config": asdict(replace(config, name=name))}

    def checkpoint(path: str, **extra: Any) -> None:
        save(run.checkpoints / path, policy, **state, **extra, optimizer=optimizer.state_dict())

    start = last_time = time.perf_counter()
    pool = LessonPool(
        config.kinds, config.size, config.pool, rng, config.expert_kinds, config.expert_refresh, config.hub_kinds
    )

    recovery_rng = np.random.default_rng([config.seed, 1])  # the training thread's own: `rng` is the prefetch thread's

    def collect_recoveries() -> dict[str, float]:
        t = time.perf_counter()
        picks = recovery_rng.choice(len(pool.slots), min(config.recovery_lessons, len(pool.slots)), replace=False)
        found, solved = collect(torch_heads(policy), [pool.slots[i][0] for i in picks])
        pool.add_recoveries(found, config.recovery_keep)
        return {
            "recovery/greedy_solved": solved,
            "recovery/found_per_lesson": len(found) / len(picks),
            "recovery/kept": len(pool.recoveries),
            "recovery/seconds": time.perf_counter() - t,
        }

    def next_batch() -> Batch:  # runs in the prefetch thread, which alone touches pool and rng
        pool.refresh(config.refresh)
        return make_batch(pool, config.batch_size, rng, config.flow_order, config.recovery)

    prefetch = ThreadPoolExecutor(1)  # numpy and torch release the GIL: batches build while the step runs
    coming = prefetch.submit(next_batch)
    best, batch_seconds, last_step, history = -1.0, 0.0, 0, []
    bar = tqdm(total=config.steps, desc=name, unit="step", dynamic_ncols=True)
    step = 0
    recovery_metrics: dict[str, float] = {}
    for step in range(1, config.steps + 1):
        if config.recovery > 0 and (step - 1) % config.recovery_every == 0:
            recovery_metrics = collect_recoveries()
        t = time.perf_counter()
        if config.lr_decay:
            for group in optimizer.param_groups:
                group["lr"] = config.lr * max(0.05, 1.0 - run_progress(step, t - start, config))
        batch = coming.result()
        coming = prefetch.submit(next_batch)
        batch_seconds += time.perf_counter() - t
        policy.train()
        with autocast:
            loss, metrics = loss_and_metrics(policy, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        bar.update()
        out_of_time = config.minutes > 0 and time.perf_counter() - start > 60 * config.minutes
        last = step == config.steps or out_of_time
        validating = step % config.val_every == 0 or last
        if step % config.log_every == 0 or validating:
            now = time.perf_counter()
            metrics["charts/samples_per_s"] = (step - last_step) * config.batch_size / (now - last_time)
            metrics["charts/learning_rate"] = optimizer.param_groups[0]["lr"]
            metrics["charts/batch_fraction"] = batch_seconds / (now - last_time)
            metrics.update(recovery_metrics)
            last_time, last_step, batch_seconds = now, step, 0.0
            if validating:
                metrics.update(validation(policy, config.kinds, config.val_seeds, config.size))
                if metrics["val/mean_score"] > best:
                    best = metrics["val/mean_score"]
                    checkpoint("best.pt", step=step, val_score=best)
                last_time = time.perf_counter()  # validation is not training time
            run.log(step * config.batch_size, metrics)
            history.append({"step": step, **metrics})
            bar.set_postfix(loss=f"{metrics['losses/loss']:.3f}", val=f"{best:.3f}")
        if last:
            break
    bar.close()
    prefetch.shutdown(cancel_futures=True)
    checkpoint("latest.pt", step=step, val_score=best)
    summary = {
        "steps": step,
        "samples": step * config.batch_size,
        "minutes": (time.perf_counter() - start) / 60,
        "best_val_mean_score": best,
        "final": history[-1] if history else {},
        "lessons_used": len(pool.seeds_used),
    }
    run.summary(summary)
    run.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    try:
        summary = train(parse_config(argv))
    except (ConfigError, CheckpointError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"best validation mean score {summary['best_val_mean_score']:.3f} after {summary['steps']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
