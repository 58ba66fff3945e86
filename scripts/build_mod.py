"""Zip the mod as the game loads it: dist/factorion_<version>.zip holding factorion_<version>/.

    python scripts/build_mod.py [--mod mod/factorion] [--out dist]

The version comes from info.json; the zip is reproducible (sorted entries, fixed
timestamps), and only the mod's own files go in (no caches or editor files).
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_SUFFIXES = {".pyc", ".swp", ".orig"}
SKIP_NAMES = {".DS_Store", "__pycache__"}


def mod_files(mod_dir: Path) -> list[Path]:
    """The files to ship, sorted, relative to `mod_dir`."""
    return sorted(
        p.relative_to(mod_dir)
        for p in mod_dir.rglob("*")
        if p.is_file()
        and p.suffix not in SKIP_SUFFIXES
        and not any(part in SKIP_NAMES or part.startswith(".") for part in p.relative_to(mod_dir).parts)
    )


def build(mod_dir: Path, out_dir: Path) -> Path:
    """Write `out_dir/<name>_<version>.zip`; returns its path."""
    info = json.loads((mod_dir / "info.json").read_text())
    top = f"{info['name']}_{info['version']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{top}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in mod_files(mod_dir):
            entry = zipfile.ZipInfo(f"{top}/{rel.as_posix()}", date_time=(2020, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, (mod_dir / rel).read_bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mod", type=Path, default=ROOT / "mod" / "factorion", help="the mod's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the zip goes [dist]")
    args = parser.parse_args(argv)
    print(build(args.mod, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
