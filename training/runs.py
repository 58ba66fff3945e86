"""A training run's folder and its metric log, shared by every training program.

A run lives in `runs/<name>/` and keeps what is needed to judge it later:
- `config.yaml`: the fully resolved configuration;
- `run.json`: the command line, the git commit and whether the tree was dirty, the start time;
- `metrics.csv`: one row per logged step, one column per metric (new metrics add columns);
- `tb/`: the same metrics as TensorBoard scalars;
- `checkpoints/`: see `training.checkpoint`;
- `summary.json`: the program's end-of-run figures, and `end_means`: every metric's mean
  over the last fifth of its logged points (one logged point is too noisy to judge by).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

RUNS = Path("runs")


def git_state() -> dict[str, Any]:
    """The commit the code is at and whether the tree differs from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def plain(config: Any) -> Any:
    """A config (dataclasses, mappings, sequences, paths) as plain YAML/JSON values."""
    if is_dataclass(config) and not isinstance(config, type):
        return {k: plain(v) for k, v in asdict(config).items()}
    if isinstance(config, Mapping):
        return {str(k): plain(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [plain(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


class Run:
    """A run folder; `Run.create` makes a new one, `Run.open` reopens one to resume."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.checkpoints = folder / "checkpoints"
        self._writer: Any = None
        self._columns: list[str] = []

    @classmethod
    def create(cls, name: str, config: Any, root: Path = RUNS) -> Run:
        """A new run folder `root/name` holding the resolved config and run.json; refuses
        to reuse a folder that already holds a run (resume it instead)."""
        folder = root / name
        if (folder / "config.yaml").exists():
            raise FileExistsError(f"{folder} already holds a run; pass --resume to continue it or choose another name")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(plain(config), sort_keys=False))
        info = {"command": [sys.executable, *sys.argv], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **git_state()}
        (folder / "run.json").write_text(json.dumps(info, indent=2) + "\n")
        run = cls(folder)
        run.checkpoints.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, folder: Path) -> Run:
        if not (folder / "config.yaml").exists():
            raise FileNotFoundError(f"{folder} is not a run folder (no config.yaml)")
        run = cls(folder)
        run.checkpoints.mkdir(exist_ok=True)
        return run

    def config(self) -> dict[str, Any]:
        loaded = yaml.safe_load((self.folder / "config.yaml").read_text())
        return loaded if isinstance(loaded, dict) else {}

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one row to metrics.csv and the TensorBoard log."""
        path = self.folder / "metrics.csv"
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        if not self._columns and path.exists():
            with path.open() as f:
                self._columns = next(csv.reader(f), [])
        new = [k for k in row if k not in self._columns]
        if new:  # rewrite the header with the new columns; old rows keep blanks there
            old_rows = list(csv.DictReader(path.open())) if path.exists() else []
            self._columns += new
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, self._columns)
                writer.writeheader()
                writer.writerows(old_rows)
        with path.open("a", newline="") as f:
            csv.DictWriter(f, self._columns).writerow(row)
        writer = self._tensorboard()
        for key, value in metrics.items():
            writer.add_scalar(key, float(value), step)

    def _tensorboard(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder / "tb"))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def summary(self, values: Mapping[str, Any]) -> None:
        """Write summary.json: `values` (end-of-run figures) and the metrics' `end_means`."""
        figures = {**values, "end_means": end_means(self.folder / "metrics.csv")}
        (self.folder / "summary.json").write_text(json.dumps(plain(figures), indent=2) + "\n")


END_FRACTION = 0.2  # the share of a metric's logged points its end-of-run mean averages


def end_means(path: Path, fraction: float = END_FRACTION) -> dict[str, float]:
    """Each metric's mean over the last `fraction` of the points logged for it (at least
    one) in a metrics.csv; {} when there is no log."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    means = {}
    for column in rows[0].keys() if rows else ():
        if column == "step":
            continue
        points = [float(row[column]) for row in rows if row.get(column) not in (None, "")]
        if points:
            tail = points[-max(1, round(len(points) * fraction)) :]
            means[column] = sum(tail) / len(tail)
    return means
