"""The committed JSON Schemas in docs/schema match the models (rerun the export if not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs" / "schema"


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "shared_schema.export", "--out", str(tmp_path)], check=True)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in DOCS.glob("*.json")}
    assert fresh == committed, "docs/schema is stale: run `python -m shared_schema.export`"
