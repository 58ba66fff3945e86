"""Benchmark output, shared by `python -m training.bench` and `python -m server.bench`:
each figure as one JSON line (machine-readable), then all of them as a rich table."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def json_line(row: dict[str, Any]) -> None:
    """Print `row` as one JSON line, flushed at once so a reader sees figures as they come."""
    print(json.dumps(row), flush=True)


def rich_table(rows: Sequence[dict[str, Any]], title: str = "Factorion benchmarks") -> str:
    """`rows` as a table, one column per key any row has (in order of appearance)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    for key in keys:
        table.add_column(key)
    for row in rows:
        table.add_row(*(str(row.get(k, "")) for k in keys))
    console = Console(file=sys.stdout, width=140)
    with console.capture() as capture:
        console.print(table)
    return capture.get()
