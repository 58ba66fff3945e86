"""Serve the planner over HTTP: `python -m server [--host H] [--port P] [--policy FILE] ...`.

With the default policy, greedy rollouts use the shipped ensemble (`--greedy-policy`):
the default policy and a PPO run's as one graph, a better greedy layout at twice a
rollout's cost, which search, with its many rollouts in a time budget, leaves to the
single policy. With another `--policy`, greedy rollouts use that one unless told.

Opens the policy first, so a missing or corrupt file fails the start at once with a
message naming it (exit code 2), then runs uvicorn. Every option is a field of
`server.app.Settings` or uvicorn's own (host, port, workers).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from server.app import DEFAULT_GREEDY_POLICY, DEFAULT_POLICY, Settings, create_app
from server.planner import DEFAULT_SEARCH_BEAM, DEFAULT_SEARCH_ROLLOUTS, Planner, PolicyLoadError


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


_positive, _not_negative = _at_least(1), _at_least(0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--policy", type=Path, default=DEFAULT_POLICY, help=f"exported ONNX policy (default {DEFAULT_POLICY})"
    )
    p.add_argument(
        "--greedy-policy",
        type=Path,
        help=f"exported ONNX policy (or ensemble) for the greedy rollout (default: {DEFAULT_GREEDY_POLICY} "
        "with the default --policy, else the --policy itself)",
    )
    p.add_argument(
        "--workers", type=_positive, default=1, help="worker processes, each with its own policy (default 1)"
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=1,
        help="onnxruntime threads per worker (default 1: requests already run side by side on the thread pool)",
    )
    p.add_argument(
        "--concurrent-plans",
        type=_positive,
        help="plans run at once per worker; the rest wait in line, first come first served "
        "(default: one per core the process may use)",
    )
    p.add_argument(
        "--search-rollouts",
        type=_positive,
        default=DEFAULT_SEARCH_ROLLOUTS,
        help=f"sampled rollouts per plan in search mode, besides the greedy one (default {DEFAULT_SEARCH_ROLLOUTS})",
    )
    p.add_argument(
        "--search-beam",
        type=_not_negative,
        default=DEFAULT_SEARCH_BEAM,
        help=f"beam width per plan in search mode, run before sampling (default {DEFAULT_SEARCH_BEAM}, 0: none)",
    )
    p.add_argument(
        "--max-body-bytes", type=_positive, default=Settings.max_body_bytes, help="largest request body accepted"
    )
    p.add_argument("--no-expert", action="store_true", help="do not run the expert on every request for comparison")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    """The server's settings from the parsed command line."""
    greedy = args.greedy_policy
    if greedy is None and args.policy.resolve() == DEFAULT_POLICY.resolve():
        greedy = DEFAULT_GREEDY_POLICY
    return Settings(
        policy_path=args.policy,
        greedy_policy_path=greedy,
        max_body_bytes=args.max_body_bytes,
        search_rollouts=args.search_rollouts,
        search_beam=args.search_beam,
        onnx_threads=args.threads,
        concurrent_plans=args.concurrent_plans,
        compare_expert=not args.no_expert,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    try:
        # fail here, clearly, not in a worker
        Planner(settings.policy_path, threads=settings.onnx_threads, greedy_path=settings.greedy_policy_path)
    except PolicyLoadError as error:
        print(f"python -m server: cannot start: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    if args.workers == 1:
        uvicorn.run(create_app(settings=settings), host=args.host, port=args.port, log_level=args.log_level)
    else:  # worker processes import the app by name and read the settings from the environment
        os.environ.update(settings.to_env())
        uvicorn.run(
            "server.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
