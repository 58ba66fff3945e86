"""Score a planner on held-out lessons: mean normalised score per lesson kind and trial depth.

    python -m training.evaluate --policy expert [--seeds 100] [--size 11] [--kinds K ...]
        [--markdown table.md] [--jsonl scores.jsonl]

Every kind is scored on the same held-out seeds (`HELD_OUT_SEEDS`, never used for
training). A task the planner leaves without a layout scores 0. Prints one JSON line
per kind and a table; `--markdown` also writes the table as Markdown (the README's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shared_schema.world import World
from training.lessons import HELD_OUT_SEEDS, KINDS, TRIAL_KINDS, Lesson, generate
from training.sim import power_mean_score, sink_rates_batch

Planner = Callable[[Lesson], World | None]
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


def score_layout(lesson: Lesson, layout: World | None) -> float:
    """The layout's normalised score on the lesson; 0 without a layout."""
    if layout is None:
        return 0.0
    rates, counts = sink_rates_batch(layout.data[None])
    return power_mean_score(rates[0, : counts[0]], lesson.best)


def evaluate(
    planner: Planner, kinds: Sequence[str], seeds: Sequence[int], size: int, progress: Progress | None = None
) -> list[KindScore]:
    results = []
    task = progress.add_task("evaluating", total=len(kinds) * len(seeds)) if progress else None
    for kind in kinds:
        scores, missing, seconds = [], 0, 0.0
        for seed in seeds:
            lesson = generate(kind, seed, size)
            start = time.perf_counter()
            layout = planner(lesson)
            seconds += time.perf_counter() - start
            missing += layout is None
            scores.append(score_layout(lesson, layout))
            if progress is not None and task is not None:
                progress.advance(task)
        s = np.asarray(scores)
        results.append(
            KindScore(
                kind=kind,
                tasks=len(seeds),
                mean_score=float(s.mean()),
                std_score=float(s.std()),
                solved=float((s >= SOLVED).mean()),
                no_layout=missing / len(seeds),
                seconds_per_task=seconds / len(seeds),
            )
        )
    return results


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="'expert' (learned policies arrive with training)")
    parser.add_argument("--seeds", type=int, default=100, help="held-out seeds per kind (default 100)")
    parser.add_argument("--size", type=int, default=11, help="grid size (8 to 32)")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), help="kinds to score (default: all)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--jsonl", type=Path, help="also write the JSON lines here")
    args = parser.parse_args(argv)
    if args.policy not in PLANNERS:
        parser.error(f"unknown policy {args.policy!r}; known: {', '.join(PLANNERS)}")
    if not 1 <= args.seeds <= len(HELD_OUT_SEEDS):
        parser.error(f"--seeds must be 1 to {len(HELD_OUT_SEEDS)}")
    kinds = args.kinds or ordered_kinds()
    seeds = list(HELD_OUT_SEEDS[: args.seeds])
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        results = evaluate(PLANNERS[args.policy], kinds, seeds, args.size, progress)
    lines = [json.dumps({"policy": args.policy, "size": args.size, **asdict(r)}) for r in results]
    print("\n".join(lines))
    table = Table(title=f"{args.policy} on {args.seeds} held-out seeds, {args.size}x{args.size}")
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
    if args.markdown:
        args.markdown.write_text(markdown_table(args.policy, args.size, results))
    if args.jsonl:
        args.jsonl.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
