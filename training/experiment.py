"""Experiments: one hypothesis, run over several seeds, believed only when it beats its baseline.

    python -m training.experiment run EXPERIMENT.yaml --seeds 5 [--jobs 2] [--set STAGE.FIELD=VALUE ...]
    python -m training.experiment compare BASELINE CANDIDATE [--alpha 0.05] [--png FILE] [--log docs/EXPERIMENTS.md]

An experiment file (YAML) states a hypothesis and the training stages that test it:

    name: bench-no-sft                      # the set's folder: runs/<name>/
    hypothesis: pre-training is what makes PPO work at this budget
    change: no pre-training stage; PPO starts from random weights
    changes: [sft, ppo.init]                # the config keys that differ from the baseline
    primary: eval/mean_score                # the one metric that decides (minimize: true if lower is better)
    stages:                                 # run in order for every seed
      - {name: ppo, program: ppo, config: configs/ppo.yaml, set: {total_steps: 120000}}
    evaluate: {seeds: 20}                   # greedy, on held-out evaluation seeds, after the last stage

A stage's configuration is laid in layers: its program's dataclass defaults (`PPOConfig`,
`SFTConfig`), then its `config` file, then its `set` fields, then `--set` flags. `init:
previous` starts a stage from the stage before's `best.pt` (its `latest.pt` where it has
none, or always with `previous:latest`), `init: PATH` from a checkpoint.

`run` writes `runs/<name>/experiment.yaml` (the resolved configuration of every stage and the
evaluation, and each run's command line) and one folder per seed, `seed-<s>/`: a run
folder per stage (`training.runs`: config, run.json with the git commit and dirty flag,
metrics.csv, TensorBoard, checkpoints, summary.json), `evaluation.md` (the final greedy
evaluation) and `summary.json` (the seed's figures: `eval/<kind>`, `eval/mean_score` over the
non-trial kinds, `eval/trial_score`, `speed/steps_per_s` and every stage's end-of-run metric
means as `<stage>:<metric>`). Seeds run in parallel processes, up to `--jobs`, each on its
own GPU where there are several. Running the same experiment again adds the seeds it lacks.

`compare` reads two such sets and prints, as Markdown, the primary metric and the standard
ones with mean +/- std per side, the change in percent, Welch's two-sample t-test p-value
and a verdict at `--alpha`; then the per-seed table; and draws learning curves (mean and a
band of one std over seeds) as a PNG. It refuses a set compared with itself (the same
folder, or the same configuration at the same commit) and sets whose configurations differ
in keys the candidate's `changes` does not declare, naming them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from training.config import ConfigError, lay_over, read_yaml
from training.runs import RUNS, git_state, plain

PROGRAMS = ("sft", "ppo")  # training programs a stage may run: training.sft, training.ppo
# Fields that say where and how fast a stage runs, not what it learns: set per seed and
# process, and left out of the comparison of two sets' configurations.
EXECUTION_FIELDS = frozenset(
    {
        "name",
        "root",
        "seed",
        "init",
        "resume",
        "max_updates",
        "threads",
        "env_threads",
        "device",
        "progress",
        "wandb",
        "wandb_project",
        "checkpoint_every",
    }
)
EXPERIMENT_FIELDS = ("name", "hypothesis", "change", "changes", "primary", "minimize", "stages", "evaluate")
STAGE_FIELDS = ("name", "program", "config", "set", "init")
EVALUATE_DEFAULTS: dict[str, Any] = {"seeds": 20, "kinds": None, "size": None}
# speed/steps_per_s: the last stage's env steps (PPO) or samples (pre-training) per second
STANDARD_METRICS = ("eval/mean_score", "eval/trial_score", "speed/steps_per_s")
CURVE_METRIC = "val/mean_score"  # drawn per stage when the primary metric is not a stage's own


class ExperimentError(ValueError):
    """A malformed experiment file, a set that cannot be run or compared; says why."""


# --- the experiment file and its resolved configuration ---------------------------------


def _config_class(program: str) -> type:
    if program == "sft":
        from training.sft import SFTConfig

        return SFTConfig
    from training.ppo import PPOConfig

    return PPOConfig


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """`--set STAGE.FIELD=VALUE` flags (values read as YAML) as a nested mapping."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        parts = key.split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ExperimentError(f"--set {pair!r}: write STAGE.FIELD=VALUE (e.g. ppo.total_steps=50000)")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ExperimentError(f"--set {pair!r}: {part} is set twice")
        node[parts[-1]] = yaml.safe_load(value)
    return nested


def resolve(path: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment file at `path` with every stage's configuration resolved (defaults <
    its `config` file < its `set` < `overrides`, keyed by stage name, `evaluate` too)."""
    spec = read_yaml(path)
    overrides = dict(overrides or {})
    unknown = sorted(set(spec) - set(EXPERIMENT_FIELDS))
    if unknown:
        raise ExperimentError(f"{path}: unknown fields {unknown}; known: {', '.join(EXPERIMENT_FIELDS)}")
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ExperimentError(f"{path}: `stages` must list at least one stage")
    resolved: dict[str, Any] = {}
    for i, stage in enumerate(stages):
        where = f"{path}: stages[{i}]"
        if not isinstance(stage, dict):
            raise ExperimentError(f"{where} must be a mapping")
        unknown = sorted(set(stage) - set(STAGE_FIELDS))
        if unknown:
            raise ExperimentError(f"{where}: unknown fields {unknown}; known: {', '.join(STAGE_FIELDS)}")
        program = stage.get("program")
        if program not in PROGRAMS:
            raise ExperimentError(f"{where}: program must be one of {', '.join(PROGRAMS)}, not {program!r}")
        name = str(stage.get("name", program))
        if name in resolved or name == "evaluate" or "." in name or "/" in name:
            raise ExperimentError(f"{where}: stage name {name!r} is taken, reserved or has a '.' or '/'")
        init = stage.get("init")
        if init in ("previous", "previous:latest") and i == 0:
            raise ExperimentError(f"{where}: the first stage has no previous stage to start from")
        if not isinstance(stage.get("set") or {}, dict):
            raise ExperimentError(f"{where}: `set` must map fields to values")
        config = _config_class(program)()
        try:
            if stage.get("config") is not None:
                config = lay_over(config, read_yaml(Path(stage["config"])), str(stage["config"]))
            config = lay_over(config, stage.get("set") or {}, f"{where}.set")
            config = lay_over(config, overrides.pop(name, {}), f"--set {name}")
        except ConfigError as error:
            raise ExperimentError(str(error)) from None
        resolved[name] = {"program": program, "init": None if init is None else str(init), **_learning(config)}
    if not isinstance(spec.get("evaluate") or {}, dict):
        raise ExperimentError(f"{path}: `evaluate` must map fields to values")
    evaluate = {**EVALUATE_DEFAULTS, **(spec.get("evaluate") or {}), **overrides.pop("evaluate", {})}
    unknown = sorted(set(evaluate) - set(EVALUATE_DEFAULTS))
    if unknown:
        raise ExperimentError(f"{path}: evaluate: unknown fields {unknown}; known: {', '.join(EVALUATE_DEFAULTS)}")
    if overrides:
        raise ExperimentError(f"--set names no stage of {path}: {', '.join(overrides)}; stages: {', '.join(resolved)}")
    if evaluate["size"] is None:
        evaluate["size"] = list(resolved.values())[-1]["size"]
    changes = spec.get("changes") or []
    if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
        raise ExperimentError(f"{path}: `changes` lists config keys such as ppo.lr or sft (a whole stage)")
    return {
        "name": str(spec.get("name") or path.stem),
        "hypothesis": str(spec.get("hypothesis", "")),
        "change": str(spec.get("change", "")),
        "changes": changes,
        "primary": str(spec.get("primary", "eval/mean_score")),
        "minimize": bool(spec.get("minimize", False)),
        "stages": resolved,
        "evaluate": evaluate,
    }


def _learning(config: Any) -> dict[str, Any]:
    """A stage config's fields that say what it learns (not `EXECUTION_FIELDS`), as plain values."""
    return {k: v for k, v in plain(config).items() if k not in EXECUTION_FIELDS}


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping of dotted keys (ppo.model.width)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """What must match between two sets for their difference to be the declared change:
    every stage's resolved configuration and the evaluation, as dotted keys. A field its
    program has gained since the set ran reads as that field's default, which is how it
    ran (a new field's default keeps the old behaviour)."""
    flat = {**flatten(record["stages"]), **flatten({"evaluate": record["evaluate"]})}
    for stage, spec in record["stages"].items():
        for key, value in flatten(_learning(_config_class(spec["program"])())).items():
            flat.setdefault(f"{stage}.{key}", value)
    return flat


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(key for key in set(a) | set(b) if a.get(key, ABSENT) != b.get(key, ABSENT))


ABSENT = "<absent>"


def describe(keys: Sequence[str], a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 12) -> str:
    """Differing keys as a reader wants them: `key (before -> after)`, and a stage that only
    one side runs as one item rather than all of its fields."""
    stages_a, stages_b = {k.split(".")[0] for k in a}, {k.split(".")[0] for k in b}
    named = {k.split(".")[0] for k in keys}
    items = [f"{stage} (a stage only the baseline runs)" for stage in sorted((stages_a - stages_b) & named)]
    items += [f"{stage} (a stage only the candidate runs)" for stage in sorted((stages_b - stages_a) & named)]
    alone = stages_a ^ stages_b
    items += [f"{k} ({a.get(k, ABSENT)!r} -> {b.get(k, ABSENT)!r})" for k in keys if k.split(".")[0] not in alone]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --- running a set ----------------------------------------------------------------------


def seed_folder(folder: Path, seed: int) -> Path:
    return folder / f"seed-{seed}"


def start_set(
    path: Path, root: Path, overrides: Mapping[str, Any], command: Sequence[str], name: str | None = None
) -> Path:
    """The set's folder with its experiment.yaml (written, or checked against the one there);
    `command`, the command line, is recorded with the git state."""
    record = resolve(path, overrides)
    if name:
        record["name"] = name
    folder = root / record["name"]
    saved = folder / "experiment.yaml"
    run = {"command": list(command), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **git_state()}
    if saved.exists():
        before = yaml.safe_load(saved.read_text())
        changed = differing_keys(comparable(before), comparable(record))
        if changed:
            raise ExperimentError(
                f"{folder} holds this experiment with another configuration (differs in {', '.join(changed)}); "
                "give the run another --name"
            )
        record["runs"] = [*before.get("runs", []), run]
    else:
        record["runs"] = [run]
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(record, sort_keys=False))
    return folder


def _stage_config(record: Mapping[str, Any], stage: str, seed_dir: Path, seed: int, threads: int, device: str) -> Any:
    spec = dict(record["stages"][stage])
    program, init = spec.pop("program"), spec.pop("init")
    config = lay_over(_config_class(program)(), spec, f"{stage} in experiment.yaml")
    names = list(record["stages"])
    start: Path | None = None
    if init in ("previous", "previous:latest"):
        checkpoints = seed_dir / names[names.index(stage) - 1] / "checkpoints"
        start = checkpoints / "best.pt"
        if init == "previous:latest" or not start.exists():
            start = checkpoints / "latest.pt"
    elif init is not None:
        start = Path(init)
    execution: dict[str, Any] = {"name": stage, "root": seed_dir, "seed": seed, "init": start, "threads": threads}
    fields = {f.name for f in dataclasses.fields(config)}
    execution.update(
        {k: v for k, v in {"env_threads": threads, "device": device, "progress": False}.items() if k in fields}
    )
    return dataclasses.replace(config, **execution)


def run_seed(folder: Path, seed: int, threads: int, device: str) -> dict[str, Any]:
    """Run every stage of the set at `folder` for one seed, then the evaluation; writes and
    returns the seed's summary. (A worker process of `run` calls this.)"""
    import torch

    from training import ppo, sft
    from training.evaluate import evaluate, load_planner, markdown_table, ordered_kinds
    from training.lessons import EVALUATION_SEEDS, TRIAL_KINDS

    record = yaml.safe_load((folder / "experiment.yaml").read_text())
    seed_dir = seed_folder(folder, seed)
    seed_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    code = git_state()  # the code the seed runs: taken now, as the tree may change while it trains
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    last = ""
    for stage, spec in record["stages"].items():
        config = _stage_config(record, stage, seed_dir, seed, threads, device)
        stage_started = time.perf_counter()
        (sft if spec["program"] == "sft" else ppo).train(config)
        stage_summary = json.loads((seed_dir / stage / "summary.json").read_text())
        metrics.update({f"{stage}:{k}": v for k, v in stage_summary.get("end_means", {}).items()})
        metrics[f"{stage}:minutes"] = (time.perf_counter() - stage_started) / 60
        last = stage
    rate = "charts/steps_per_s" if record["stages"][last]["program"] == "ppo" else "charts/samples_per_s"
    if f"{last}:{rate}" in metrics:
        metrics["speed/steps_per_s"] = metrics[f"{last}:{rate}"]
    checkpoints = seed_dir / last / "checkpoints"
    policy = checkpoints / "best.pt" if (checkpoints / "best.pt").exists() else checkpoints / "latest.pt"
    settings = record["evaluate"]
    # by default the kinds the last stage trained on (all of them where it drew every kind)
    kinds = settings["kinds"] or record["stages"][last]["kinds"] or ordered_kinds()
    results = evaluate(load_planner(str(policy)), kinds, list(EVALUATION_SEEDS[: settings["seeds"]]), settings["size"])
    (seed_dir / "evaluation.md").write_text(markdown_table(str(policy), settings["size"], results))
    plain = [r for r in results if r.kind not in TRIAL_KINDS]
    trials = [r for r in results if r.kind in TRIAL_KINDS]
    metrics.update({f"eval/{r.kind}": r.mean_score for r in results})
    if plain:
        metrics["eval/mean_score"] = float(np.mean([r.mean_score for r in plain]))
    if trials:
        metrics["eval/trial_score"] = float(np.mean([r.mean_score for r in trials]))
    summary = {
        "seed": seed,
        "policy": str(policy),
        "minutes": (time.perf_counter() - started) / 60,
        **code,
        "metrics": metrics,
    }
    (seed_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _stage_fraction(run_dir: Path, spec: Mapping[str, Any]) -> float:
    """How far one stage of one seed has come, from its run folder (0 to 1)."""
    if (run_dir / "summary.json").exists():
        return 1.0
    log = run_dir / "metrics.csv"
    if not log.exists():
        return 0.0
    lines = log.read_text().splitlines()
    try:
        step = float(lines[-1].split(",", 1)[0]) if len(lines) > 1 else 0.0
    except ValueError:
        step = 0.0
    if spec["program"] == "ppo":
        return min(1.0, step / spec["total_steps"])
    done = step / (spec["steps"] * spec["batch_size"])
    if spec["minutes"]:
        done = max(done, (time.time() - (run_dir / "config.yaml").stat().st_mtime) / (60 * spec["minutes"]))
    return min(1.0, done)


def seed_progress(folder: Path, seed: int, record: Mapping[str, Any]) -> float:
    """Stages done (plus the evaluation) for one seed, as a count of units."""
    seed_dir = seed_folder(folder, seed)
    if (seed_dir / "summary.json").exists():
        return len(record["stages"]) + 1.0
    return sum(_stage_fraction(seed_dir / stage, spec) for stage, spec in record["stages"].items())


def _devices(jobs: int) -> list[str]:
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:
        count = 0
    return [f"cuda:{i % count}" for i in range(jobs)] if count else ["cpu"] * jobs


def run_set(folder: Path, seeds: Sequence[int], jobs: int) -> list[int]:
    """Run the seeds of the set at `folder` the set lacks, `jobs` processes at a time, with a
    progress bar for the whole batch; returns the seeds that failed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    record = yaml.safe_load((folder / "experiment.yaml").read_text())
    todo = []
    for seed in seeds:
        seed_dir = seed_folder(folder, seed)
        if (seed_dir / "summary.json").exists():
            continue
        if seed_dir.exists():
            raise ExperimentError(
                f"{seed_dir} holds an unfinished run of seed {seed}; remove it to run that seed again"
            )
        todo.append(seed)
    devices = _devices(jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)  # the cores shared out, GPUs or not
    units = len(record["stages"]) + 1
    failed: list[int] = []
    running: dict[int, tuple[int, subprocess.Popen[bytes], IO[bytes]]] = {}  # slot -> (seed, process, its log)
    queue = list(todo)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        whole = bar.add_task(f"{record['name']}: {len(todo)} seeds", total=len(todo) * units)
        tasks = {seed: bar.add_task(f"  seed {seed}", total=units, visible=False) for seed in todo}
        try:
            while queue or running:
                for slot in range(jobs):
                    if slot not in running and queue:
                        seed = queue.pop(0)
                        seed_folder(folder, seed).mkdir(parents=True, exist_ok=True)
                        log: IO[bytes] = (seed_folder(folder, seed) / "log.txt").open("wb")
                        command = [sys.executable, "-m", "training.experiment", "_seed", str(folder), str(seed)]
                        command += ["--threads", str(threads), "--device", devices[slot]]
                        running[slot] = (seed, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
                        bar.update(tasks[seed], visible=True)
                for slot, (seed, process, log) in list(running.items()):
                    if process.poll() is not None:
                        del running[slot]
                        log.close()
                        if process.returncode != 0:
                            failed.append(seed)
                            tail = (seed_folder(folder, seed) / "log.txt").read_text(errors="replace").splitlines()[-5:]
                            bar.console.print(f"seed {seed} failed (exit {process.returncode}):", *tail, sep="\n  ")
                done = {seed: seed_progress(folder, seed, record) for seed in todo}
                for seed, units_done in done.items():
                    bar.update(tasks[seed], completed=units_done)
                bar.update(whole, completed=sum(done.values()))
                time.sleep(0.5)
        except KeyboardInterrupt:
            for _, process, log in running.values():
                process.terminate()
                log.close()
            raise
    return failed


# --- comparing two sets -----------------------------------------------------------------


@dataclass
class ExperimentSet:
    folder: Path
    record: dict[str, Any]
    seeds: dict[int, dict[str, Any]]  # seed -> its summary.json

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def commits(self) -> list[str]:
        """The commits its seeds ran at (12 digits), marked where the tree was dirty."""
        return sorted(
            {f"{str(s.get('commit'))[:12]}{' (dirty)' if s.get('dirty') else ''}" for s in self.seeds.values()}
        )

    def values(self, metric: str) -> np.ndarray:
        return np.array([s["metrics"].get(metric, math.nan) for _, s in sorted(self.seeds.items())], dtype=float)


def load_set(folder: Path) -> ExperimentSet:
    """A set of runs: experiment.yaml and every finished seed's summary.json."""
    saved = folder / "experiment.yaml"
    if not saved.exists():
        raise ExperimentError(f"{folder} is not an experiment set (no experiment.yaml); run one with `run`")
    record = yaml.safe_load(saved.read_text())
    seeds = {}
    for summary in sorted(folder.glob("seed-*/summary.json")):
        loaded = json.loads(summary.read_text())
        seeds[int(loaded["seed"])] = loaded
    if not seeds:
        raise ExperimentError(f"{folder} has no finished seeds")
    return ExperimentSet(folder, record, seeds)


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float


def welch(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> Welch:
    """Welch's two-sample t-test of mean(b) - mean(a), two-sided (samples of unequal
    variance). With no spread on either side the means are certain: p is 1 where they are
    equal and 0 where they differ. NaN with fewer than 2 values a side."""
    from scipy.stats import t as student_t

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return Welch(math.nan, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    diff = float(y.mean() - x.mean())
    if vx + vy == 0:
        return Welch(0.0 if diff == 0 else math.copysign(math.inf, diff), math.nan, 1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return Welch(float(t), float(df), float(2 * student_t.sf(abs(t), df)))


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    baseline: np.ndarray
    candidate: np.ndarray
    test: Welch
    verdict: str

    @property
    def change(self) -> float:
        """The change of the candidate's mean, in percent of the baseline's."""
        base = float(np.mean(self.baseline))
        return math.nan if base == 0 else 100 * (float(np.mean(self.candidate)) - base) / abs(base)


def verdict(test: Welch, diff: float, alpha: float, minimize: bool = False) -> str:
    if math.isnan(test.p):
        return "too few seeds"
    if test.p >= alpha:
        return "no change"
    return "better" if (diff < 0) == minimize else "worse"


@dataclass
class Comparison:
    baseline: ExperimentSet
    candidate: ExperimentSet
    alpha: float
    primary: str
    metrics: list[MetricComparison] = field(default_factory=list)
    differences: str = ""  # the declared change: the keys that differ, described


def compare(baseline: ExperimentSet, candidate: ExperimentSet, alpha: float = 0.05) -> Comparison:
    """The comparison of two sets on the candidate's primary metric and the standard ones;
    ExperimentError for a set compared with itself or an undeclared difference of configs."""
    if not 0 < alpha < 1:
        raise ExperimentError(f"--alpha must lie between 0 and 1, not {alpha}")
    if baseline.folder.resolve() == candidate.folder.resolve():
        raise ExperimentError(f"{candidate.folder} is compared with itself: give two different sets")
    a, b = comparable(baseline.record), comparable(candidate.record)
    differences = differing_keys(a, b)
    if not differences and baseline.commits == candidate.commits:
        raise ExperimentError(
            f"{baseline.folder} and {candidate.folder} ran the same configuration at the same commit "
            f"({', '.join(candidate.commits)}): that compares a set with itself"
        )
    declared = candidate.record.get("changes") or []
    undeclared = [k for k in differences if not any(k == c or k.startswith(c + ".") for c in declared)]
    if undeclared:
        raise ExperimentError(
            f"the configs differ in keys {candidate.folder}/experiment.yaml does not declare in `changes` "
            f"(declared: {declared or 'none'}): {describe(undeclared, a, b)}"
        )
    primary = str(candidate.record.get("primary", "eval/mean_score"))
    minimize = bool(candidate.record.get("minimize", False))
    comparison = Comparison(baseline, candidate, alpha, primary, differences=describe(differences, a, b, 50))
    last_programs = {list(s.record["stages"].values())[-1]["program"] for s in (baseline, candidate)}
    for metric in _metrics(primary, baseline, candidate):
        if metric == "speed/steps_per_s" and len(last_programs) > 1:
            continue  # PPO's env steps and pre-training's samples per second are not one measure
        x, y = baseline.values(metric), candidate.values(metric)
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if metric == primary and (not len(x) or not len(y)):
            missing = baseline if not len(x) else candidate
            raise ExperimentError(f"{missing.folder}: no seed has the primary metric {primary!r}")
        if not len(x) or not len(y):
            continue
        test = welch(x, y)
        diff = float(np.mean(y) - np.mean(x))
        lower = minimize if metric == primary else False
        comparison.metrics.append(MetricComparison(metric, x, y, test, verdict(test, diff, alpha, lower)))
    return comparison


def _metrics(primary: str, *sets: ExperimentSet) -> list[str]:
    kinds: list[str] = []
    for s in sets:
        for summary in s.seeds.values():
            for key in summary["metrics"]:
                if key.startswith("eval/") and key not in STANDARD_METRICS and key not in kinds:
                    kinds.append(key)
    ordered = [primary, STANDARD_METRICS[0], *kinds, *STANDARD_METRICS[1:]]
    return list(dict.fromkeys(ordered))


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}%"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _p_is(value: float) -> str:
    """'p < 0.001' or 'p = 0.042', for prose."""
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _mean_std(values: np.ndarray) -> str:
    """mean ± std, both to the mean's precision."""
    if not len(values):
        return "n/a"
    mean, std = float(values.mean()), _std(values)
    digits = 1 if abs(mean) >= 100 else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(comparison: Comparison) -> str:
    """The comparison table, the verdict on the primary metric, and the per-seed table."""
    base, cand = comparison.baseline, comparison.candidate
    lines = [
        f"| metric | {base.name} ({len(base.seeds)} seeds) | {cand.name} ({len(cand.seeds)} seeds) | change | "
        "p (Welch) | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in comparison.metrics:
        change = _percent(m.change)
        name = f"**{m.metric}** (primary)" if m.metric == comparison.primary else m.metric
        lines.append(
            f"| {name} | {_mean_std(m.baseline)} | {_mean_std(m.candidate)} | {change} | {_p(m.test.p)} | {m.verdict} |"
        )
    primary = comparison.metrics[0]
    lines += [
        "",
        f"Verdict on {primary.metric} at alpha {comparison.alpha}: **{primary.verdict}** ({_p_is(primary.test.p)}).",
        "",
    ]
    lines += [f"| seed | {base.name}: {primary.metric} | {cand.name}: {primary.metric} |", "| ---: | ---: | ---: |"]
    for seed in sorted(set(base.seeds) | set(cand.seeds)):
        row = [_seed_value(s, seed, primary.metric) for s in (base, cand)]
        lines.append(f"| {seed} | {row[0]} | {row[1]} |")
    return "\n".join(lines) + "\n"


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _seed_value(s: ExperimentSet, seed: int, metric: str) -> str:
    if seed not in s.seeds or metric not in s.seeds[seed]["metrics"]:
        return "-"
    return _number(float(s.seeds[seed]["metrics"][metric]))


def _curve(log: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import csv

    if not log.exists():
        return np.zeros(0), np.zeros(0)
    with log.open(newline="") as f:
        points = [(float(r["step"]), float(r[metric])) for r in csv.DictReader(f) if r.get(metric) not in (None, "")]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def curves_png(comparison: Comparison, path: Path) -> None:
    """Learning curves of both sets, one panel per stage: the mean over seeds and a band of
    one standard deviation, on the steps all seeds reached."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stage, _, own = comparison.primary.partition(":")
    metric = own if own and not stage.startswith("eval") else CURVE_METRIC
    stages = list(dict.fromkeys([*comparison.baseline.record["stages"], *comparison.candidate.record["stages"]]))
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 4), squeeze=False)
    for ax, name in zip(axes[0], stages, strict=True):
        for s in (comparison.baseline, comparison.candidate):
            if name not in s.record["stages"]:
                continue
            curves = [_curve(seed_folder(s.folder, seed) / name / "metrics.csv", metric) for seed in s.seeds]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            low, high = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
            grid = np.unique(np.concatenate([c[0] for c in curves]))
            grid = grid[(grid >= low) & (grid <= high)]
            if not len(grid):
                continue
            values = np.stack([np.interp(grid, x, y) for x, y in curves])
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(grid, mean, label=f"{s.name} ({len(curves)} seeds)")
            ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
        unit = (
            "samples"
            if (comparison.candidate.record["stages"].get(name) or comparison.baseline.record["stages"][name])[
                "program"
            ]
            == "sft"
            else "env steps"
        )
        ax.set_title(f"{name}: {metric}")
        ax.set_xlabel(unit)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def log_entry(comparison: Comparison, command: Sequence[str]) -> str:
    """The comparison as an entry of the experiment log: hypothesis, change, commands, verdict."""
    cand, base = comparison.candidate, comparison.baseline
    runs = [*base.record.get("runs", []), *cand.record.get("runs", [])]
    commands = [" ".join(["python", *r["command"][1:]]) for r in runs] + [" ".join(["python", *command[1:]])]
    primary = comparison.metrics[0]
    lines = [
        f"## {date.today().isoformat()}: {cand.name} against {base.name}",
        "",
        f"- Hypothesis: {cand.record.get('hypothesis') or '(none given)'}",
        f"- Change: {cand.record.get('change') or '(none given)'}",
        f"- Keys that differ: {comparison.differences or 'none (a change of code)'}",
        f"- Primary metric: {primary.metric}; verdict at alpha {comparison.alpha}: **{primary.verdict}** "
        f"({_p_is(primary.test.p)}, change {_percent(primary.change)})",
        f"- Commits: {base.name} {', '.join(base.commits)}; {cand.name} {', '.join(cand.commits)}",
        "",
        "```",
        *commands,
        "```",
        "",
        markdown(comparison),
    ]
    return "\n".join(lines)


LOG_HEADER = """# Experiment log

One entry per comparison, appended by `python -m training.experiment compare ... --log docs/EXPERIMENTS.md`:
the hypothesis, the change, the commands, and the verdict of Welch's t-test over seeds.
"""


def append_log(path: Path, entry: str) -> None:
    text = path.read_text() if path.exists() else LOG_HEADER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n\n" + entry)


# --- command line -----------------------------------------------------------------------


def _print_set(folder: Path, primary: str) -> None:
    """A JSON line per finished seed (its evaluation and speed), then the primary metric's mean."""
    s = load_set(folder)
    for seed, summary in sorted(s.seeds.items()):
        shown = {k: v for k, v in summary["metrics"].items() if k.startswith(("eval/", "speed/")) or k == primary}
        print(json.dumps({"set": s.name, "seed": seed, "minutes": round(summary["minutes"], 2), **shown}))
    values = s.values(primary)
    print(f"{s.name}: {len(s.seeds)} seeds, {primary} {_mean_std(values[~np.isnan(values)])}")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.experiment", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment over several seeds")
    run.add_argument("experiment", type=Path, help="the experiment's YAML file")
    run.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    run.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    run.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process (default 1)")
    run.add_argument("--root", type=Path, default=RUNS, help="where sets go (default runs)")
    run.add_argument("--name", help="the set's folder name (default: the experiment's name)")
    run.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE", help="override a field")
    cmp = commands.add_parser("compare", help="compare two sets of runs")
    cmp.add_argument("baseline", type=Path)
    cmp.add_argument("candidate", type=Path)
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    cmp.add_argument("--png", type=Path, help="learning curves (default: CANDIDATE/compare-<baseline>.png)")
    cmp.add_argument("--log", type=Path, help="append the comparison to this experiment log (docs/EXPERIMENTS.md)")
    seed = commands.add_parser("_seed", help=argparse.SUPPRESS)
    seed.add_argument("folder", type=Path)
    seed.add_argument("seed", type=int)
    seed.add_argument("--threads", type=int, default=1)
    seed.add_argument("--device", default="cpu")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "training.experiment", *argv]
    args = parser.parse_args(argv)
    try:
        if args.command == "_seed":
            run_seed(args.folder, args.seed, args.threads, args.device)
            return 0
        if args.command == "run":
            if args.seeds < 1 or args.jobs < 1:
                parser.error("--seeds and --jobs must be at least 1")
            folder = start_set(args.experiment, args.root, parse_sets(args.set), command, args.name)
            failed = run_set(folder, range(args.first_seed, args.first_seed + args.seeds), args.jobs)
            _print_set(folder, yaml.safe_load((folder / "experiment.yaml").read_text())["primary"])
            if failed:
                print(f"error: seeds {failed} failed; their logs are in {folder}/seed-*/log.txt", file=sys.stderr)
                return 1
            return 0
        comparison = compare(load_set(args.baseline), load_set(args.candidate), args.alpha)
        print(markdown(comparison))
        png = args.png or args.candidate / f"compare-{comparison.baseline.name}.png"
        curves_png(comparison, png)
        print(f"learning curves: {png}")
        if args.log:
            append_log(args.log, log_entry(comparison, command))
            print(f"logged in {args.log}")
        return 0
    except (ExperimentError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
