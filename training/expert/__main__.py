"""Print a lesson's task and the expert's layout for it, in the text grid format.

    python -m training.expert --kind belt-wall --seed 3 [--size 11]

The score is the layout's sink rates against the lesson's reference solution, or for
trials against their upper bound. When the expert finds no layout it says so (and shows
the reference solution, if the lesson has one).
"""

from __future__ import annotations

import argparse
import sys

from shared_schema.grid import render_grid
from training.expert import expert_layout
from training.lessons import KINDS, generate
from training.lessons.base import MAX_SIZE, MIN_SIZE
from training.sim import power_mean_score, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.expert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="lesson kind")
    parser.add_argument("--seed", type=int, default=0, help="lesson seed")
    parser.add_argument("--size", type=int, default=11, help="grid size (8 to 32)")
    args = parser.parse_args(argv)
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        parser.error(f"--size must be {MIN_SIZE} to {MAX_SIZE}, not {args.size}")
    lesson = generate(args.kind, args.seed, args.size)
    print(f"task ({args.kind}, seed {args.seed}):")
    print(render_grid(lesson.task))
    layout = expert_layout(lesson.task, lesson.protected)
    normaliser = "upper bound" if lesson.solution is None else "reference"
    best = ", ".join(f"{r:.4g}/s" for r in lesson.best)
    if layout is None:
        print(f"\nthe expert found no layout for this task: score 0.000 ({normaliser} {best})")
        if lesson.solution is not None:
            print("\nthe lesson's reference solution:")
            print(render_grid(lesson.solution))
        return 0
    print("\nexpert layout:")
    print(render_grid(layout))
    rates = simulate(layout).rates
    score = power_mean_score(rates, list(lesson.best))
    print(f"\nsinks: {', '.join(f'{r:.4g}/s' for r in rates)} ({normaliser} {best})  score {score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
