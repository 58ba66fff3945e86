"""Print a lesson's task and the expert's layout for it, in the text grid format.

    python -m training.expert --kind belt-wall --seed 3 [--size 11]

The expert so far routes belts (one source to one sink of the same item); for other
tasks it says it has no layout, and the lesson's reference solution is shown instead.
"""

from __future__ import annotations

import argparse
import sys

from shared_schema.grid import render_grid
from training.expert import expert_layout
from training.lessons import KINDS, generate
from training.sim import power_mean_score, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.expert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="lesson kind")
    parser.add_argument("--seed", type=int, default=0, help="lesson seed")
    parser.add_argument("--size", type=int, default=11, help="grid size (8 to 32)")
    args = parser.parse_args(argv)
    lesson = generate(args.kind, args.seed, args.size)
    print(f"task ({args.kind}, seed {args.seed}):")
    print(render_grid(lesson.task))
    layout = expert_layout(lesson.task, lesson.protected)
    if layout is None:
        if lesson.solution is None:
            print("\nthe expert found no layout for this task")
            return 1
        print("\nthe expert has no layout for this task yet; the lesson's reference solution:")
        layout = lesson.solution
    else:
        print("\nexpert layout:")
    print(render_grid(layout))
    rates = simulate(layout).rates
    print(f"\nsinks: {', '.join(f'{r:.4g}/s' for r in rates)}  score {power_mean_score(rates, list(lesson.best)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
