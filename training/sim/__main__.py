"""Check fixture files against the mimic.

    python -m training.sim FILE.yaml [FILE.yaml ...] [--explain]

Prints one line per failing document (description, expected, got) and a last line
`N passed, M failed`; exits 1 if any failed (2 if a file cannot be read).
"""

from __future__ import annotations

import argparse
import sys

from training.sim.explain import explain
from training.sim.fixtures import FixtureError, check, load_fixtures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="fixture YAML files")
    parser.add_argument("--explain", action="store_true", help="print per-sink figures and every entity's flow")
    args = parser.parse_args(argv)
    passed = failed = 0
    for path in args.files:
        try:
            fixtures = load_fixtures(path)
        except FixtureError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        for fixture in fixtures:
            outcome = check(fixture)
            if outcome.passed:
                passed += 1
            else:
                failed += 1
                want = sorted(fixture.expected)
                what = fixture.description or "(no description)"
                print(f"FAIL {fixture.name}: {what} | expected {want} | got {outcome.got}")
            if args.explain:
                print(f"--- {fixture.name}: {fixture.description}")
                print(explain(fixture.world, outcome.result))
                print()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
