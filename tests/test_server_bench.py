"""`python -m server.bench`: a tiny smoke run against a real server (figures are read,
never timed), the missing-policy message, and how a figure is judged against its target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server.bench import Load, level_row

ROOT = Path(__file__).parents[1]
LEVEL_KEYS = {"bench", "mode", "clients", "expert", "requests", "p50_ms", "p99_ms", "server_p50_ms", "plans_per_s"}
MEMORY_KEYS = {"bench", "requests", "baseline_request", "rss_baseline_mib", "rss_end_mib", "growth_mib"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_a_smoke_run_prints_every_figure_as_a_json_line(tiny_policy: Path) -> None:
    run = bench(
        *("--policy", str(tiny_policy), "--requests", "20", "--per-level", "6"),
        *("--concurrency", "1", "2", "--modes", "greedy", "--tasks-per-kind", "1"),
    )
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    levels = [r for r in rows if r["bench"] == "server"]
    assert [(r["mode"], r["clients"]) for r in levels] == [("greedy", 1), ("greedy", 2)]
    for row in levels:
        assert LEVEL_KEYS | {"errors", "target", "met"} <= set(row)
        assert row["errors"] == 0 and row["requests"] == 6 and row["expert"] is True
    (memory,) = [r for r in rows if r["bench"] == "server-memory"]
    assert MEMORY_KEYS | {"peak_rss_mib", "errors", "target", "met"} <= set(memory)
    assert memory["errors"] == 0 and memory["requests"] == 20 and memory["baseline_request"] == 10
    if Path("/proc/self/status").exists():
        assert memory["peak_rss_mib"] >= memory["rss_end_mib"] > 0
    assert "Server latency and throughput" in run.stdout and "Server memory" in run.stdout


def test_a_missing_policy_is_named_and_exits_2(tmp_path: Path) -> None:
    run = bench("--policy", str(tmp_path / "nowhere.onnx"))
    assert run.returncode == 2
    assert "nowhere.onnx" in run.stderr and "python -m training.export" in run.stderr


def test_a_figure_meets_its_target_only_without_errors() -> None:
    fast = Load(seconds=1.0, latencies_ms=[100.0] * 10, server_ms=[90.0] * 10)
    assert level_row("greedy", 1, True, 1.0, fast)["met"] is True
    assert level_row("greedy", 1, True, 1.0, Load(1.0, [200.0] * 10, [190.0] * 10))["met"] is False
    failing = Load(1.0, [100.0] * 9, [90.0] * 9)
    failing.errors["500"] += 1
    row = level_row("greedy", 1, True, 1.0, failing)
    assert (row["met"], row["errors"], row["requests"], row["error_kinds"]) == (False, 1, 10, {"500": 1})
    # search is judged by its p99 against the budget
    slow_tail = Load(1.0, [300.0] * 98 + [1500.0] * 2, [300.0] * 100)
    assert level_row("search", 4, True, 1.0, slow_tail, hits=2)["met"] is False
    assert level_row("search", 4, True, 2.0, slow_tail, hits=0)["met"] is True
