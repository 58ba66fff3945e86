"""Load benchmark of the planning server: latency, throughput, errors and memory over HTTP.

    python -m server.bench [--policy FILE] [--requests 1000] [--per-level 100]
        [--concurrency 1 4 16] [--modes greedy search] [--budget 1.0] [--no-expert]

Starts `python -m server` (its default settings, logging at warning) on a free port
of 127.0.0.1 in a subprocess, waits for /readyz, then drives it with httpx's async
client:

1. For each mode and each number of concurrent clients (each client sends its next
   request as soon as it has the last answer), `--per-level` plan requests. A figure
   per (mode, clients): p50 and p99 latency (client side, from sending the request to
   reading the whole answer, so HTTP and queueing included), the server's own p50
   (`timings_ms.total`: from arrival to answer, the wait for a planning slot
   included), plans per second (answered 200, over the level's wall time), errors
   (any other status, or no answer) and, in search mode, how many plans the time
   budget cut short (`factorion_plan_budget_hits_total`).
2. A long run of `--requests` greedy requests at the largest concurrency: the server
   process's resident memory after request 100 (or half way, for fewer than 200) and
   at the end, and its peak over the whole benchmark (VmRSS and VmHWM of
   /proc/PID/status).

Tasks are 11x11 lessons of every kind on the held-out seeds (`HELD_OUT_SEEDS`, never
trained on), posed as requests by `PlanRequest.from_world`, sent in turn; a task is
always sent with the same seed, its index. Search requests carry `--budget` (1 s, the
issue's default; the schema's own default is 2 s). The client shares the machine's
cores with the server, as a game's bridge would.

Prints one JSON line per figure as it is measured (as `python -m training.bench`
does), then tables with each figure's target and whether it was met. Exit code 2 when
the policy file is missing or the server refuses it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

from server.app import DEFAULT_POLICY
from shared_schema.messages import PlanOptions, PlanRequest
from training.report import json_line, rich_table

SIZE = 11
GREEDY_P50_MS = 150.0  # issue 5's target for greedy plans on this 2-core machine
GROWTH_MIB = 10.0  # "no growth": the resident memory may move this much (allocator noise), no more
BASELINE_REQUEST = 100  # the long run's memory is compared between this request and the last
START_TIMEOUT_S = 300.0  # loading the policy and warming up (compiled kernels come from numba's cache)
REQUEST_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------------- tasks


def task_requests(per_kind: int) -> list[PlanRequest]:
    """`per_kind` 11x11 lessons of every kind on the first held-out seeds, as requests
    (default options), kinds interleaved so that any stretch of them mixes kinds."""
    from training.lessons import HELD_OUT_SEEDS, KINDS, generate

    return [
        PlanRequest.from_world(generate(kind, seed, SIZE).task) for seed in HELD_OUT_SEEDS[:per_kind] for kind in KINDS
    ]


def bodies(requests: list[PlanRequest], mode: str, budget: float) -> list[bytes]:
    """The JSON bodies of `requests` in `mode`, each seeded with its index."""
    return [
        r.model_copy(update={"options": PlanOptions.model_validate({"mode": mode, "time_budget_s": budget, "seed": i})})
        .model_dump_json()
        .encode()
        for i, r in enumerate(requests)
    ]


# ---------------------------------------------------------------------------- the server


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on (free when asked; the server binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_kib(pid: int, key: str) -> int | None:
    """A memory figure of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: its peak),
    or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class ServerFailed(Exception):
    """The server exited or did not become ready; the message holds the end of its log."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Server:
    url: str
    pid: int
    policy: str  # the name /readyz reports: file@sha256 prefix


@contextmanager
def running_server(policy: Path, no_expert: bool) -> Iterator[Server]:
    """`python -m server` on a free port, ready; stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "server", "--port", str(port), "--policy", str(policy)]
    command += ["--log-level", "warning", *(["--no-expert"] if no_expert else [])]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def failed(what: str) -> ServerFailed:
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-20:])
            return ServerFailed(f"{what}; its log ends:\n{tail}", process.poll())

        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT_S
            with httpx.Client(base_url=url, timeout=5.0) as client:
                while True:
                    if process.poll() is not None:
                        raise failed(f"the server exited with code {process.returncode} before it was ready")
                    if time.monotonic() > deadline:
                        raise failed(f"the server was not ready after {START_TIMEOUT_S:.0f} s")
                    try:
                        ready = client.get("/readyz")
                        if ready.status_code == 200:
                            break
                        if ready.json().get("reason", "").startswith("warming up the planner failed"):
                            raise failed(f"the server is not ready: {ready.json()['reason']}")
                    except httpx.TransportError:
                        pass  # not listening yet
                    time.sleep(0.2)
            yield Server(url, process.pid, ready.json().get("policy") or str(policy))
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def budget_hits(url: str) -> float:
    """`factorion_plan_budget_hits_total` of search mode so far (0 before the first)."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    match = re.search(r'^factorion_plan_budget_hits_total\{mode="search"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# ---------------------------------------------------------------------------- the load


@dataclass
class Load:
    """What one run of requests measured."""

    seconds: float = 0.0  # wall time of the whole run
    latencies_ms: list[float] = field(default_factory=list)  # answered 200, client side
    server_ms: list[float] = field(default_factory=list)  # the same plans' timings_ms.total
    errors: Counter[str] = field(default_factory=Counter)  # by status code or exception type
    first_error: str = ""


async def drive(
    url: str,
    payloads: list[bytes],
    count: int,
    clients: int,
    label: str,
    on_answer: Callable[[int], None] | None = None,
) -> Load:
    """`count` POST /plan requests (payloads in turn) from `clients` clients each
    sending its next request when it has the last answer; `on_answer(n)` after the
    n-th answer (or failure)."""
    load = Load()
    sent = 0
    answered = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}
    progress = tqdm(total=count, desc=label, unit="plan", file=sys.stderr, disable=None, leave=False)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal sent, answered
        while sent < count:
            payload = payloads[sent % len(payloads)]
            sent += 1
            start = time.perf_counter()
            try:
                response = await client.post("/plan", content=payload, headers=headers)
                elapsed = 1000 * (time.perf_counter() - start)
                if response.status_code == 200:
                    load.latencies_ms.append(elapsed)
                    load.server_ms.append(float(response.json()["timings_ms"]["total"]))
                else:
                    load.errors[str(response.status_code)] += 1
                    load.first_error = load.first_error or f"{response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as error:
                load.errors[type(error).__name__] += 1
                load.first_error = load.first_error or f"{type(error).__name__}: {error}"
            answered += 1
            progress.update()
            if on_answer is not None:
                on_answer(answered)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        load.seconds = time.perf_counter() - start
    progress.close()
    return load


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def level_row(
    mode: str, clients: int, expert: bool, budget: float, load: Load, hits: int | None = None
) -> dict[str, Any]:
    """The figure of one (mode, clients) level, with its target and whether it was met;
    `hits`: the plans the time budget cut short (search mode; None in the others)."""
    errors = sum(load.errors.values())
    p50, p99 = _ms(load.latencies_ms, 50), _ms(load.latencies_ms, 99)
    if mode == "search":
        target = f"p99_ms <= {1000 * budget:.0f} and errors == 0"  # the budget
        met = p99 is not None and p99 <= 1000 * budget and errors == 0
    else:
        target = f"p50_ms <= {GREEDY_P50_MS:.0f} and errors == 0" if mode == "greedy" else "errors == 0"
        met = errors == 0 and (mode != "greedy" or (p50 is not None and p50 <= GREEDY_P50_MS))
    row: dict[str, Any] = {
        "bench": "server",
        "mode": mode,
        "clients": clients,
        "expert": expert,
        "requests": len(load.latencies_ms) + errors,
        "p50_ms": p50,
        "p99_ms": p99,
        "server_p50_ms": _ms(load.server_ms, 50),
        "plans_per_s": round(len(load.latencies_ms) / load.seconds, 2) if load.seconds else None,
        "errors": errors,
    }
    row["budget_hits"] = hits
    if load.errors:
        row["error_kinds"] = dict(load.errors)
    row |= {"target": target, "met": met}
    return row


def _mib(kib: int | None) -> float | None:
    return round(kib / 1024, 1) if kib is not None else None


def memory_row(server: Server, requests: int, clients: int, expert: bool, payloads: list[bytes]) -> dict[str, Any]:
    """The long greedy run: resident memory after the baseline request and at the end."""
    baseline_at = min(BASELINE_REQUEST, requests // 2)
    baseline: list[int | None] = [None]

    def on_answer(n: int) -> None:
        if n == baseline_at:
            baseline[0] = status_kib(server.pid, "VmRSS")

    load = asyncio.run(drive(server.url, payloads, requests, clients, f"memory x{clients}", on_answer))
    end = status_kib(server.pid, "VmRSS")
    growth = _mib(end - baseline[0]) if end is not None and baseline[0] is not None else None
    errors = sum(load.errors.values())
    row: dict[str, Any] = {
        "bench": "server-memory",
        "mode": "greedy",
        "clients": clients,
        "expert": expert,
        "requests": requests,
        "baseline_request": baseline_at,
        "rss_baseline_mib": _mib(baseline[0]),
        "rss_end_mib": _mib(end),
        "growth_mib": growth,
        "peak_rss_mib": _mib(status_kib(server.pid, "VmHWM")),
        "plans_per_s": round(len(load.latencies_ms) / load.seconds, 2) if load.seconds else None,
        "errors": errors,
    }
    if load.errors:
        row["error_kinds"] = dict(load.errors)
    row["target"] = f"growth_mib <= {GROWTH_MIB:.0f} and errors == 0"
    row["met"] = errors == 0 and (growth is None or growth <= GROWTH_MIB)
    return row


# ---------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--policy", type=Path, default=DEFAULT_POLICY, help=f"ONNX policy to serve (default {DEFAULT_POLICY})"
    )
    p.add_argument(
        "--requests", type=int, default=1000, help="greedy requests of the long run that checks memory (0: skip it)"
    )
    p.add_argument("--per-level", type=int, default=100, help="requests per (mode, clients) figure (default 100)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients, one figure each")
    p.add_argument("--modes", nargs="+", choices=["greedy", "search", "expert"], default=["greedy", "search"])
    p.add_argument("--budget", type=float, default=1.0, help="time_budget_s of every request, s (default 1)")
    p.add_argument("--tasks-per-kind", type=int, default=8, help="held-out seeds of every lesson kind (default 8)")
    p.add_argument(
        "--no-expert", action="store_true", help="start the server with --no-expert (no expert comparison per plan)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if min(args.concurrency) < 1 or args.per_level < 1 or args.requests < 0:
        parser().error("--concurrency and --per-level must be at least 1, --requests at least 0")
    if not args.policy.is_file():
        default = " (the default policy is not bundled yet)" if args.policy == DEFAULT_POLICY else ""
        print(
            f"python -m server.bench: no policy file {args.policy}{default}; pass --policy FILE, "
            "an export of `python -m training.export`",
            file=sys.stderr,
        )
        return 2
    requests = task_requests(args.tasks_per_kind)
    expert = not args.no_expert
    rows: list[dict[str, Any]] = []
    try:
        with running_server(args.policy, args.no_expert) as server:
            print(
                f"serving {server.policy} at {server.url} (pid {server.pid}, expert comparison "
                f"{'on' if expert else 'off'}); {len(requests)} tasks of {SIZE}x{SIZE}",
                file=sys.stderr,
            )
            for mode in args.modes:
                payloads = bodies(requests, mode, args.budget)
                for clients in args.concurrency:
                    hits = budget_hits(server.url) if mode == "search" else 0.0
                    load = asyncio.run(drive(server.url, payloads, args.per_level, clients, f"{mode} x{clients}"))
                    cut = int(budget_hits(server.url) - hits) if mode == "search" else None
                    row = level_row(mode, clients, expert, args.budget, load, cut)
                    if load.first_error:
                        print(f"first error: {load.first_error}", file=sys.stderr)
                    json_line(row)
                    rows.append(row)
            if args.requests:
                payloads = bodies(requests, "greedy", args.budget)
                memory = memory_row(server, args.requests, max(args.concurrency), expert, payloads)
                json_line(memory)
    except ServerFailed as error:
        print(f"python -m server.bench: {error}", file=sys.stderr)
        return 2 if error.exit_code == 2 else 1
    setting = f"expert comparison {'on' if expert else 'off'}"
    print(rich_table(_shown(rows), f"Server latency and throughput ({setting}, {args.per_level} requests each)"))
    if args.requests:
        print(rich_table(_shown([memory]), f"Server memory ({setting})"))
    return 0


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows for the tables: what their titles say, or what is in the JSON lines only, left out."""
    return [{k: v for k, v in row.items() if k not in ("bench", "expert", "error_kinds")} for row in rows]


if __name__ == "__main__":
    sys.exit(main())
