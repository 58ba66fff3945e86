"""Benchmarks: machine-readable figures (JSON lines) then a readable table.

    python -m training.bench sim [--grid 11] [--layouts 4000] [--repeats 5] [--fixtures FILE.yaml]
    python -m training.bench env [--envs 256] [--size 11] [--steps 100] [--lessons 20] [--threads 2] [--repeats 8]
    python -m training.bench ppo [--updates 10] [--warmup 2] [PPO flags, e.g. --num-envs 128]

`sim`: steady-state evaluations per second on one core through the batched path
(`sink_rates_batch`), on seeded lesson-like layouts (`random_layouts.routed_layout`)
or on the layouts of a fixture file.

`env`: lessons generated per second on one core (`generate` over fresh seeds, each
kind and all kinds in equal shares), then vector-env steps per second
(`FactoryVectorEnv`, `--envs` envs, random legal actions drawn from the masks, the
mimic scoring every changed world every step on `--threads` threads).

`ppo`: end-to-end PPO training, env steps per wall second including the updates
(`training.ppo` with its default config at 11x11 unless PPO flags are given, in a
temporary run folder); each update is one timed run, and the mean seconds per update
spent in the env, the rollout's forward passes, the update and the rest are shown.

Compilation and warm-up are excluded; each figure is the best of `--repeats` timed
runs (the median beside it), the usual way to read a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.report import json_line, rich_table

# One core, as the figure promises (numba threads are unused, BLAS should be too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def _best_rate(run: Callable[[], object], count: int, repeats: int) -> tuple[float, float]:
    """(best, median) items per second of `run`, which processes `count` items."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return max(rates), float(np.median(rates))


def bench_sim(grid: int, layouts: int, repeats: int, fixtures: list[str]) -> dict[str, object]:
    from training.sim.engine import sink_rates_batch
    from training.sim.fixtures import load_fixtures
    from training.sim.random_layouts import routed_layout, stack

    if fixtures:
        worlds = [f.world for path in fixtures for f in load_fixtures(path)]
        by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
        for w in worlds:
            by_shape.setdefault((w.height, w.width), []).append(w.data)
        batches = [np.stack(group) for group in by_shape.values()]
        # repeat small fixture sets so a timed run is long enough to measure
        times = max(1, layouts // max(1, len(worlds)))
        batches = [np.concatenate([b] * times) for b in batches]
        source = ",".join(Path(p).name for p in fixtures)
    else:
        rng = np.random.default_rng(0)
        batches = [stack([routed_layout(rng, grid) for _ in range(layouts)])]
        source = "routed_layout"
    count = sum(len(b) for b in batches)
    for b in batches:  # compile (or load the cache) outside the timing
        sink_rates_batch(b[:1])

    def run() -> None:
        for b in batches:
            sink_rates_batch(b)

    best, median = _best_rate(run, count, repeats)
    return {
        "bench": "sim",
        "grid": grid if not fixtures else None,
        "layouts": source,
        "count": count,
        "layouts_per_s": round(best, 1),
        "median_layouts_per_s": round(median, 1),
        "us_per_layout": round(1e6 / best, 2),
    }


def bench_lessons(size: int, per_kind: int, repeats: int) -> list[dict[str, object]]:
    from training.lessons import KINDS, generate

    rows: list[dict[str, object]] = []
    rates: list[float] = []
    fresh = iter(range(1_000_000))  # a new block of seeds for every timed run
    for kind in KINDS:
        generate(kind, 0, size)  # compile what it uses outside the timing

        def run(kind: str = kind) -> None:
            block = next(fresh) * per_kind
            for seed in range(block, block + per_kind):
                generate(kind, seed, size)

        best, median = _best_rate(run, per_kind, repeats)
        rates.append(best)
        rows.append({"bench": "lessons", "kind": kind, "size": size, "count": per_kind, "per_s": round(best, 1)})
        rows[-1]["median_per_s"] = round(median, 1)
    # equal shares of every kind: the harmonic mean of the per-kind rates
    overall = len(rates) / sum(1 / rate for rate in rates)
    rows.insert(0, {"bench": "lessons", "kind": "all", "size": size, "count": per_kind * len(rows)})
    rows[0]["per_s"] = round(overall, 1)
    return rows


def bench_env(envs: int, size: int, steps: int, threads: int, repeats: int) -> dict[str, object]:
    from training.env import FactoryVectorEnv
    from training.env.core import n_recipes
    from training.env.vector import random_legal_actions

    env = FactoryVectorEnv(num_envs=envs, size=size, threads=threads)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)

    def run() -> None:
        nonlocal obs
        for _ in range(steps):
            obs = env.step(random_legal_actions(obs["action_mask"], rng, n_recipes(), obs["done_mask"]))[0]

    run()  # warm-up: compilation, and the first lessons of every env's pool
    best, median = _best_rate(run, steps * envs, repeats)
    return {
        "bench": "env",
        "envs": envs,
        "size": size,
        "threads": threads,
        "count": steps * envs,
        "per_s": round(best, 1),
        "median_per_s": round(median, 1),
    }


def bench_ppo(updates: int, warmup: int, flags: list[str]) -> dict[str, object]:
    import tempfile

    from training.ppo import parse_config, train

    with tempfile.TemporaryDirectory() as root:
        config = parse_config([*flags, "--root", root, "--name", "bench", "--no-progress", "--checkpoint-every", "0"])
        config.max_updates = warmup + updates
        history = train(config)["history"][warmup:]
    rates = [m["charts/steps_per_s"] for m in history]
    seconds = {part: float(np.mean([m[f"time/{part}"] for m in history])) for part in ("env", "forward", "update")}
    steps = config.num_envs * config.rollout
    return {
        "bench": "ppo",
        "size": config.size,
        "envs": config.num_envs,
        "rollout": config.rollout,
        "epochs": config.epochs,
        "minibatches": config.minibatches,
        "width": config.model.width,
        "threads": config.threads,
        "count": steps * len(history),
        "per_s": round(max(rates), 1),
        "median_per_s": round(float(np.median(rates)), 1),
        "overall_per_s": round(steps * len(history) / sum(steps / r for r in rates), 1),
        **{f"s_{part}": round(value, 3) for part, value in seconds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    sim = sub.add_parser("sim", help="mimic layouts per second on one core")
    sim.add_argument("--grid", type=int, default=11, help="grid size of the generated layouts")
    sim.add_argument("--layouts", type=int, default=4000, help="layouts per timed run")
    sim.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    sim.add_argument("--fixtures", action="append", default=[], help="time this fixture file's layouts instead")
    env = sub.add_parser("env", help="lessons per second, then vector-env steps per second")
    env.add_argument("--envs", type=int, default=256, help="sub-environments of the vector env")
    env.add_argument("--size", type=int, default=11, help="grid size of the lessons")
    env.add_argument("--steps", type=int, default=100, help="vector-env steps per timed run")
    env.add_argument("--lessons", type=int, default=20, help="lessons of each kind per timed run")
    env.add_argument("--threads", type=int, default=2, help="mimic threads of the vector env")
    env.add_argument("--repeats", type=int, default=8, help="timed runs; the best is reported")
    ppo = sub.add_parser("ppo", help="end-to-end PPO env steps per second (updates included)")
    ppo.add_argument("--updates", type=int, default=10, help="timed updates; the best is reported")
    ppo.add_argument("--warmup", type=int, default=2, help="updates run first and not timed")
    args, rest = parser.parse_known_args(argv)
    if rest and args.which != "ppo":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.which == "ppo":
        rows = [bench_ppo(args.updates, args.warmup, rest)]
    elif args.which == "sim":
        rows = [bench_sim(args.grid, args.layouts, args.repeats, args.fixtures)]
    else:
        rows = bench_lessons(args.size, args.lessons, args.repeats)
        rows.append(bench_env(args.envs, args.size, args.steps, args.threads, args.repeats))
    for row in rows:
        json_line(row)
    print(rich_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
