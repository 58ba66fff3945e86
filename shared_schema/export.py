"""Write every message model's JSON Schema: `python -m shared_schema.export [--out DIR]`.

One file per model, `<Model>.schema.json`, into DIR (default `docs/schema/` at the
repository root). The server's OpenAPI docs show the same schemas; these files are for
the mod and any other client that wants them without running the server.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shared_schema.messages import MODELS

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "schema"


def export_schemas(out: Path) -> list[Path]:
    """Write each model's schema into `out` (created if missing); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in MODELS:
        path = out / f"{model.__name__}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared_schema.export", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"directory to write to (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in export_schemas(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
