"""Score a planner on held-out lessons: mean normalised score per lesson kind and trial depth.

    python -m training.evaluate --policy expert|CKPT.pt|POLICY.onnx [--seeds 100] [--size 11] [--search N] [--beam W]
        [--done-rule] [--kinds K ...] [--markdown table.md] [--jsonl scores.jsonl] [--png chart.png]
        [--compare-expert] [--seed-set evaluation|validation]

Every kind is scored on the same held-out seeds (`HELD_OUT_SEEDS`, never used for
training). `--seed-set validation` scores the validation seeds instead
(`VALIDATION_SEEDS`, which training validates on): a second opinion where a choice was
made by looking at the evaluation seeds' scores. A task the planner leaves without a
layout scores 0. A learned policy (a training checkpoint or an ONNX export) plays greedy
rollouts from the bare task (prefill 0): all seeds of a kind at once, one placement per
step with the env's own masks, validator and placement (`training.env.core`), until it
says "done" or the env's step limit (size * size // 2 steps); its score is the final
world's, as the env reports it. With `--search N` (and `--beam W`) it keeps, per task,
the best of its greedy rollout, N sampled ones (and the layouts of a beam search of
width W) as scored in the mimic: the server's search mode without a time budget. With
`--done-rule` its rollouts may not say "done" while a sink is left short
(`training.env.masks.done_masks`: an experiment that neither the recipe's training nor
the server uses).
Prints one JSON line per kind and a table; `--markdown` also writes the table as
Markdown (the README's); `--png` draws the mean score per kind as bars, with the
expert's beside them when `--compare-expert` is given (which also scores the expert and
prints its lines and table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shared_schema.world import World
from training.config import check_lessons
from training.env.core import place, reasons
from training.env.masks import rollout_masks
from training.lessons import EVALUATION_SEEDS, KINDS, TRIAL_KINDS, VALIDATION_SEEDS, Lesson, generate
from training.lessons.base import MAX_SIZE, MIN_SIZE
from training.onnx_policy import HeadArrays, choose, expansions
from training.sim import power_mean_score, sink_rates_batch

if TYPE_CHECKING:  # this module imports without torch: the expert and ONNX policies need none
    from training.model import Policy

Planner = Callable[[Lesson], World | None]
BatchPlanner = Callable[[list[Lesson]], list[World | None]]  # all seeds of a kind at once
HeadsFn = Callable[[np.ndarray], HeadArrays]  # a policy network: int16[B, 6, H, W] worlds -> heads
SOLVED = 0.999  # a score at least this counts as solved (rates are floats)


@dataclass(frozen=True)
class KindScore:
    kind: str
    tasks: int
    mean_score: float
    std_score: float
    solved: float  # fraction of tasks scored at least SOLVED
    no_layout: float  # fraction of tasks the planner left without a layout
    seconds_per_task: float


def expert_planner(lesson: Lesson) -> World | None:
    from training.expert import expert_layout

    return expert_layout(lesson.task, lesson.protected)


PLANNERS: dict[str, Planner] = {"expert": expert_planner}


def one_by_one(planner: Planner) -> BatchPlanner:
    return lambda lessons: [planner(lesson) for lesson in lessons]


def rollout(
    heads: HeadsFn,
    worlds: np.ndarray,
    rng: np.random.Generator | None = None,
    max_steps: int | None = None,
    deadline: float = float("inf"),
    states: list[np.ndarray] | None = None,
    taken: list[np.ndarray] | None = None,
    done_rule: bool = False,
) -> np.ndarray | None:
    """Rollouts of a policy from each of `worlds` (int16[B, 6, H, W]) stepped together as
    the env steps them: one placement per step under the env's action mask (an illegal
    one would change nothing) and, with `done_rule`, its "done" mask (`training.env.masks`),
    until "done" or `max_steps` (default: the env's, H * W // 2);
    greedy when `rng` is None, else sampled from it. The final worlds, or None when
    `deadline` (a time.perf_counter time) passed before all were done. `states`, when
    given, gets a copy of all B worlds after each step (a finished world stays as it was);
    `taken`, when given, each step's actions int64[B, 5] ("done" included; -1 for worlds
    already finished)."""
    worlds = np.array(worlds, copy=True, order="C")
    h, w = worlds.shape[2:]
    steps = h * w // 2 if max_steps is None else max_steps
    active = np.arange(len(worlds))
    for _ in range(steps):
        if not len(active):
            break
        if time.perf_counter() > deadline:
            return None
        current = worlds[active]
        masks, done_masks = rollout_masks(current, done_rule)
        actions = choose(heads(current), masks, greedy=rng is None, rng=rng, done_mask=done_masks)
        if taken is not None:
            record = np.full((len(worlds), 5), -1, np.int64)
            record[active] = actions
            taken.append(record)
        placing = actions[:, 0] < h * w
        active, actions = active[placing], actions[placing]
        legal = reasons(worlds, active, actions) == -1
        place(worlds, active[legal], actions[legal])
        if states is not None:
            states.append(worlds.copy())
    return worlds


def beam_rollout(
    heads: HeadsFn,
    task: np.ndarray,
    width: int,
    max_steps: int | None = None,
    deadline: float = float("inf"),
    done_rule: bool = False,
) -> np.ndarray | None:
    """A beam search of the policy from `task` (int16[6, H, W]): each step every live
    layout is extended by its `width` most likely tiles (with the greedy rest of each
    action, `training.onnx_policy.expansions`), and the `width` most likely distinct
    layouts live on. A layout leaves the beam when "done" is among its kept extensions.
    The final worlds (the finished layouts, then those alive at `max_steps`, default
    H * W // 2), or None when `deadline` passed first. The env's masks, validator and
    placement, as in `rollout` (`done_rule` too)."""
    h, w = task.shape[1:]
    steps = h * w // 2 if max_steps is None else max_steps
    live, log_prob = np.ascontiguousarray(task[None]), np.zeros(1)
    finished = []
    for _ in range(steps):
        if not len(live):
            break
        if time.perf_counter() > deadline:
            return None
        masks, done_masks = rollout_masks(live, done_rule)
        actions, step_log_prob = expansions(heads(live), masks, width, done_masks)
        total = log_prob[:, None] + step_log_prob  # [live, width]
        order = np.argsort(-total, axis=None, kind="stable")
        parents, picks = np.unravel_index(order[np.isfinite(total.ravel()[order])], total.shape)
        grown: list[tuple[np.ndarray, float]] = []
        seen: set[bytes] = set()
        for parent, pick in zip(parents, picks, strict=True):
            if len(grown) == width:
                break
            action = actions[parent, pick]
            if action[0] == h * w:  # "done": this layout is finished
                finished.append(live[parent])
                continue
            child = live[parent : parent + 1].copy()
            only = np.zeros(1, np.int64)
            if reasons(child, only, action[None]) == -1:
                place(child, only, action[None])
            key = child.tobytes()
            if key not in seen:  # two orders of the same placements are one layout
                seen.add(key)
                grown.append((child[0], total[parent, pick]))
        if not grown:
            live = live[:0]
            break
        live = np.stack([world for world, _ in grown])
        log_prob = np.array([score for _, score in grown])
    return np.stack([*finished, *live]) if finished or len(live) else task[None].copy()


def _tasks(lessons: Sequence[Lesson]) -> np.ndarray:
    return np.stack([lesson.task.data for lesson in lessons])


def policy_planner(heads: HeadsFn, done_rule: bool = False) -> BatchPlanner:
    """Greedy rollouts from each lesson's bare task (all lessons share one grid size)."""

    def plan(lessons: Sequence[Lesson]) -> list[World | None]:
        worlds = rollout(heads, _tasks(lessons), done_rule=done_rule)
        assert worlds is not None  # no deadline
        return [World(world) for world in worlds]

    return plan


def search_planner(heads: HeadsFn, samples: int, beam: int = 0, seed: int = 0, done_rule: bool = False) -> BatchPlanner:
    """Per lesson, the greedy rollout, a beam search of width `beam` (0: none) and
    `samples` sampled rollouts, each scored in the mimic: the best (the earliest on ties,
    the greedy one first). The server's search mode without its time budget."""

    def plan(lessons: Sequence[Lesson]) -> list[World | None]:
        tasks = _tasks(lessons)
        greedy = rollout(heads, tasks, done_rule=done_rule)
        repeated = np.repeat(tasks, samples, axis=0)
        sampled = rollout(heads, repeated, np.random.default_rng(seed), done_rule=done_rule)
        assert greedy is not None and sampled is not None  # no deadline
        chosen: list[World | None] = []
        for i, lesson in enumerate(lessons):
            beamed = beam_rollout(heads, tasks[i], beam, done_rule=done_rule) if beam else tasks[:0]
            assert beamed is not None
            candidates = np.concatenate((greedy[i : i + 1], beamed, sampled[i * samples : (i + 1) * samples]))
            chosen.append(max((World(c) for c in candidates), key=partial(score_layout, lesson)))  # first best
        return chosen

    return plan


def torch_heads(policy: Policy) -> HeadsFn:
    """A `training.model.Policy` as a HeadsFn (no gradients, eval mode, on its own device)."""
    import torch

    device = next(policy.parameters()).device

    def run(worlds: np.ndarray) -> HeadArrays:
        was_training = policy.training
        policy.eval()
        with torch.no_grad():
            out = policy(torch.as_tensor(worlds, device=device))
        policy.train(was_training)
        return HeadArrays(*(t.float().cpu().numpy() for t in out))

    return run


def load_planner(spec: str, search: int = 0, beam: int = 0, done_rule: bool = False) -> BatchPlanner:
    """'expert', a training checkpoint (.pt) or an ONNX export (.onnx); a policy plays
    greedily, or searches over a beam of width `beam` and `search` sampled rollouts
    beside the greedy one; with `done_rule`, its rollouts may not stop while a sink is
    left short (`training.env.masks.done_masks`)."""
    if spec in PLANNERS:
        return one_by_one(PLANNERS[spec])
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"unknown policy {spec!r}: neither {', '.join(PLANNERS)} nor a file")
    heads: HeadsFn
    if path.suffix == ".onnx":
        from training.onnx_policy import OnnxPolicy

        heads = OnnxPolicy(path).heads
    else:
        from training.checkpoint import load

        policy, _ = load(path)
        heads = torch_heads(policy)
    if search or beam:
        return search_planner(heads, search, beam, done_rule=done_rule)
    return policy_planner(heads, done_rule)


def score_layout(lesson: Lesson, layout: World | None) -> float:
    """The layout's normalised score on the lesson; 0 without a layout."""
    return 0.0 if layout is None else float(score_worlds([lesson], layout.data[None])[0])


def score_worlds(lessons: Sequence[Lesson], worlds: np.ndarray) -> np.ndarray:
    """The normalised score of each of `worlds` (int16[B, 6, H, W]) on its lesson, float64[B]."""
    rates, counts = sink_rates_batch(worlds)
    return np.array([power_mean_score(r[:c], lesson.best) for lesson, r, c in zip(lessons, rates, counts, strict=True)])


def evaluate(
    planner: BatchPlanner, kinds: Sequence[str], seeds: Sequence[int], size: int, progress: Progress | None = None
) -> list[KindScore]:
    """Score `planner` on `seeds` of each kind (a one-lesson `Planner` goes in `one_by_one`)."""
    results = []
    task = progress.add_task("evaluating", total=len(kinds) * len(seeds)) if progress else None
    for kind in kinds:
        lessons = [generate(kind, seed, size) for seed in seeds]
        start = time.perf_counter()
        layouts = planner(lessons)
        seconds = time.perf_counter() - start
        s = np.asarray([score_layout(lesson, layout) for lesson, layout in zip(lessons, layouts, strict=True)])
        results.append(
            KindScore(
                kind=kind,
                tasks=len(seeds),
                mean_score=float(s.mean()),
                std_score=float(s.std()),
                solved=float((s >= SOLVED).mean()),
                no_layout=sum(layout is None for layout in layouts) / len(seeds),
                seconds_per_task=seconds / len(seeds),
            )
        )
        if progress is not None and task is not None:
            progress.advance(task, len(seeds))
    return results


def validation(
    policy: Policy, kinds: Sequence[str], seeds: int, size: int, done_rule: bool = False
) -> dict[str, float]:
    """Greedy rollouts of a torch policy on the first `seeds` validation seeds of each kind
    (`VALIDATION_SEEDS`: held out of training, and apart from the seeds evaluation scores),
    as training logs them: val/<kind> and val/mean_score (the mean over the kinds)."""
    check_lessons(size, kinds, seeds)
    planner = policy_planner(torch_heads(policy), done_rule)
    results = evaluate(planner, kinds, list(VALIDATION_SEEDS[:seeds]), size)
    scores = {f"val/{r.kind}": r.mean_score for r in results}
    return {"val/mean_score": float(np.mean(list(scores.values()))), **scores}


def markdown_table(policy: str, size: int, results: list[KindScore]) -> str:
    lines = [
        f"| kind ({policy}, {size}x{size}) | tasks | mean score | solved | no layout | ms/task |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.kind} | {r.tasks} | {r.mean_score:.3f} ± {r.std_score:.3f} | {r.solved:.0%} | "
            f"{r.no_layout:.0%} | {1000 * r.seconds_per_task:.1f} |"
        )
    return "\n".join(lines) + "\n"


def ordered_kinds() -> list[str]:
    """Lesson kinds in registration order, trials last."""
    return [k for k in KINDS if k not in TRIAL_KINDS] + sorted(TRIAL_KINDS)


def bar_chart(path: Path, size: int, scores: dict[str, list[KindScore]]) -> None:
    """A PNG of the mean score per kind (error bars: one standard deviation), one bar per planner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [r.kind for r in next(iter(scores.values()))]
    x = np.arange(len(kinds))
    width = 0.8 / len(scores)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(kinds) + 2), 4))
    for i, (name, results) in enumerate(scores.items()):
        means = [r.mean_score for r in results]
        ax.bar(x + (i - (len(scores) - 1) / 2) * width, means, width, yerr=[r.std_score for r in results], label=name)
    ax.set_xticks(x, kinds, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean normalised score")
    ax.set_title(f"held-out seeds, {size}x{size}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(console: Console, name: str, size: int, seed_set: str, seeds: int, results: list[KindScore]) -> list[str]:
    lines = [json.dumps({"policy": name, "size": size, "seed_set": seed_set, **asdict(r)}) for r in results]
    print("\n".join(lines))
    which = "validation" if seed_set == "validation" else "held-out"
    table = Table(title=f"{name} on {seeds} {which} seeds, {size}x{size}")
    for column in ("kind", "mean score", "solved", "no layout", "ms/task"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for r in results:
        table.add_row(
            r.kind,
            f"{r.mean_score:.3f} ± {r.std_score:.3f}",
            f"{r.solved:.0%}",
            f"{r.no_layout:.0%}",
            f"{1000 * r.seconds_per_task:.1f}",
        )
    console.print(table)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="'expert', a checkpoint (.pt) or an ONNX export (.onnx)")
    parser.add_argument("--seeds", type=int, default=100, help="held-out seeds per kind (default 100)")
    parser.add_argument(
        "--seed-set",
        choices=("evaluation", "validation"),
        default="evaluation",
        help="the held-out seeds evaluation scores (default), or those training validates on",
    )
    parser.add_argument("--size", type=int, default=11, help="grid size (8 to 32)")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), help="kinds to score (default: all)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--jsonl", type=Path, help="also write the JSON lines here")
    parser.add_argument("--png", type=Path, help="also draw the mean score per kind as a bar chart here")
    parser.add_argument("--compare-expert", action="store_true", help="also score the expert, beside it in the chart")
    parser.add_argument(
        "--search",
        type=int,
        default=0,
        metavar="N",
        help="a policy keeps the best of its greedy and N sampled rollouts",
    )
    parser.add_argument(
        "--beam", type=int, default=0, metavar="W", help="... and the layouts of a beam search of width W"
    )
    parser.add_argument(
        "--done-rule", action="store_true", help="a policy may not say done while a sink is left short (an experiment)"
    )
    args = parser.parse_args(argv)
    for flag in ("search", "beam"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be 0 or more, not {getattr(args, flag)}")
    try:
        planner = load_planner(args.policy, args.search, args.beam, args.done_rule)
    except Exception as error:  # an unknown name or a file that is not a policy
        parser.error(str(error))
    validating = args.seed_set == "validation"
    pool = VALIDATION_SEEDS if validating else EVALUATION_SEEDS
    if not 1 <= args.seeds <= len(pool):
        why = "validation seeds" if validating else "the rest validate training"
        parser.error(f"--seeds must be 1 to {len(pool)} ({why})")
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        parser.error(f"--size must be {MIN_SIZE} to {MAX_SIZE}, not {args.size}")
    kinds = args.kinds or ordered_kinds()
    seeds = list(pool[: args.seeds])
    console = Console(stderr=True)
    how = [f"{flag} {getattr(args, flag)}" for flag in ("search", "beam") if getattr(args, flag)]
    if args.done_rule and args.policy not in PLANNERS:
        how.append("done rule")
    searching = ", ".join(how)
    planners = {f"{args.policy} ({searching})" if searching else args.policy: planner}
    if args.compare_expert and args.policy != "expert":
        planners["expert"] = one_by_one(expert_planner)
    scores, lines = {}, []
    for name, plan in planners.items():
        with Progress(console=console, transient=True) as progress:
            scores[name] = evaluate(plan, kinds, seeds, args.size, progress)
        lines += _report(console, name, args.size, args.seed_set, args.seeds, scores[name])
    if args.markdown:
        args.markdown.write_text("\n".join(markdown_table(n, args.size, r) for n, r in scores.items()))
    if args.jsonl:
        args.jsonl.write_text("\n".join(lines) + "\n")
    if args.png:
        bar_chart(args.png, args.size, {Path(n).name: r for n, r in scores.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
