"""The RCON bridge: polls the mod for plan jobs, plans them over HTTP, sends the results back.

`python -m server.bridge` runs one loop:

1. connect to the game over RCON (factorio-rcon-py) and ask `/factorion-version`; a
   wrong password, a game without the mod, or a mod speaking another protocol stops
   the bridge with a message saying which and what to do;
2. `/factorion-poll` for jobs (`PlanJob`), and for each: tell the player it is being
   planned, `POST {server_url}/plan` its request, shift the placements to game tiles,
   and send them as `PlanResult` batches (`/factorion-result`), then `/factorion-ack`,
   after which the mod builds the result and forgets the job;
3. on any RCON failure (the library never reconnects by itself): close, wait with
   exponential backoff, reconnect and start over from the poll.

No request is lost across a reconnect: the mod keeps every job until it is
acknowledged, so a job whose delivery broke off is polled again and delivered again
from batch 0 (which resets the mod's partial copy). A re-polled job is matched by
job id (and content) to the result already planned, so it is never planned twice.
The protocol is in `server/rcon_protocol.py` and docs/BRIDGE.md; the HTTP side in
`server/plan_client.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
from factorio_rcon import InvalidPassword, RCONBaseError, RCONClient
from pydantic import ValidationError

from server.plan_client import PlanClient, PlanningError, TransientPlanningError, first_error
from server.rcon_protocol import (
    CMD_ACK,
    CMD_POLL,
    CMD_RESULT,
    CMD_STATUS,
    CMD_VERSION,
    MAX_COMMAND_BYTES,
    MIN_COMMAND_BYTES,
    PROTOCOL_VERSION,
    AckMessage,
    CommandReply,
    ModReplyError,
    PollReply,
    StatusMessage,
    VersionReply,
    command,
    error_result,
    lua_lists,
    parse_reply,
    player_text,
    result_batches,
)
from shared_schema.messages import SUPPORTED_SCHEMA_VERSIONS, PlanJob, PlanResponse, PlanResult

log = logging.getLogger("factorion.bridge")

_CACHE_SIZE = 256  # planned results kept for re-polled jobs; more than any mod queue holds


@dataclass(frozen=True)
class BridgeConfig:
    """Where the game and the planning server are, and how patiently to talk to them."""

    rcon_host: str = "127.0.0.1"
    """Host of the game's RCON socket."""
    rcon_port: int = 27015
    """Its port (the game's --rcon-port / local-rcon-socket)."""
    rcon_password: str = ""
    """The game's RCON password (--rcon-password / local-rcon-password)."""
    server_url: str = "http://127.0.0.1:8000"
    """The planning server; jobs go to POST {server_url}/plan."""
    poll_interval_s: float = 1.0
    """Wait between polls while the mod has no jobs, s."""
    rcon_timeout_s: float = 30.0
    """Socket timeout for one RCON command, s (the game does not answer while saving)."""
    backoff_initial_s: float = 0.5
    """First wait before reconnecting (and before retrying the planning server), s."""
    backoff_max_s: float = 30.0
    """Longest such wait, s; each failure in a row doubles the wait up to this."""
    plan_attempts: int = 3
    """Tries per job while the planning server is unreachable or busy (502/503/504)."""
    plan_timeout_margin_s: float = 30.0
    """HTTP timeout of a plan = the request's time budget plus this, s."""
    max_command_bytes: int = MAX_COMMAND_BYTES
    """Longest RCON command sent, bytes; results are batched to fit."""

    def __post_init__(self) -> None:
        if self.max_command_bytes < MIN_COMMAND_BYTES:
            raise ValueError(f"max_command_bytes must be at least {MIN_COMMAND_BYTES}, not {self.max_command_bytes}")
        if self.plan_attempts < 1:
            raise ValueError(f"plan_attempts must be at least 1, not {self.plan_attempts}")

    def backoff(self, failures: int) -> float:
        """The wait after `failures` failures in a row (0 for the first)."""
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** min(failures, 30)))


class BridgeError(Exception):
    """The bridge cannot go on; the message says why and what to change."""


class _Stopping(Exception):
    """The bridge was asked to stop while waiting; the job stays queued in the mod."""


def _fingerprint(raw: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def summarize(job: PlanJob, response: PlanResponse) -> str:
    """What the player reads when the result is built: entity count, score, per-sink rates."""
    sinks = ", ".join(
        f"{s.item} {s.per_second:.2f}/s of {s.best_per_second:.2f}/s at ({s.x + job.origin.x}, {s.y + job.origin.y})"
        for s in response.sinks
    )
    text = f"Factorion planned {len(response.placements)} entities (score {response.score:.2f}, {response.policy}). "
    return player_text(text + f"Sinks: {sinks}.")


@dataclass
class _Prepared:
    """A job's result, ready to (re)send."""

    job_id: str
    fingerprint: str
    player_index: int | None
    batches: list[PlanResult]
    placements: int = field(default=0)


class Bridge:
    """One game, one planning server. Not thread-safe: run it on one thread."""

    def __init__(self, config: BridgeConfig, *, http_transport: httpx.BaseTransport | None = None):
        self.config = config
        self.planner = PlanClient(config.server_url, config.plan_timeout_margin_s, http_transport)
        self.mod_version: VersionReply | None = None
        self.reconnect_delays: deque[float] = deque(maxlen=1000)  # the latest waits before reconnects, s
        self.delivered: deque[str] = deque(maxlen=1000)  # the latest job ids the mod acknowledged, in order
        self._rcon: RCONClient | None = None
        self._prepared: OrderedDict[str, _Prepared] = OrderedDict()
        self._dropped: set[str] = set()  # fingerprints of jobs refused or unreadable, not retried
        self._stop = threading.Event()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set. Raises BridgeError when it cannot go on (wrong
        password, no mod, another protocol); every other failure reconnects."""
        self._stop = stop or threading.Event()
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self.connect()
                    failures = 0
                    while not self._stop.is_set():
                        if not self.step():
                            self._stop.wait(self.config.poll_interval_s)
                except (RCONBaseError, ModReplyError) as exc:
                    self._close()
                    delay = self.config.backoff(failures)
                    failures += 1
                    self.reconnect_delays.append(delay)
                    log.warning("RCON to %s: %s; reconnecting in %.2f s", self._where(), _describe(exc), delay)
                    self._stop.wait(delay)
                except _Stopping:
                    break
        finally:
            self._close()

    def close(self) -> None:
        """Release the RCON socket and the HTTP client."""
        self._close()
        self.planner.close()

    def connect(self) -> VersionReply:
        """Connect, authenticate and check the mod's protocol. Raises BridgeError for a
        wrong password, a game without the mod or a version mismatch."""
        self._close()
        cfg = self.config
        client = RCONClient(cfg.rcon_host, cfg.rcon_port, cfg.rcon_password, cfg.rcon_timeout_s, connect_on_init=False)
        try:
            client.connect()
        except InvalidPassword:
            raise BridgeError(
                f"the game at {self._where()} refused the RCON password: set FACTORION_RCON_PASSWORD "
                "(RCON_PASSWORD in .env under compose) to the game's rcon-password"
            ) from None
        self._rcon = client
        self.mod_version = self._handshake()
        log.info(
            "connected to %s: Factorion mod %s (protocol %d, schema %d)",
            self._where(),
            self.mod_version.mod_version,
            self.mod_version.protocol_version,
            self.mod_version.schema_version,
        )
        return self.mod_version

    def step(self) -> int:
        """Poll once and deliver every job polled; the number of jobs handled."""
        poll = parse_reply(CMD_POLL, self._send(command(CMD_POLL)), PollReply)
        handled = 0
        for raw in poll.jobs:
            if self._stop.is_set():
                break
            handled += self._handle(raw)
        return handled

    # ------------------------------------------------------------------ one job

    def _handle(self, raw: dict[str, Any]) -> bool:
        fingerprint = _fingerprint(raw)
        if fingerprint in self._dropped:
            return False
        job_id = raw.get("job_id")
        prepared = self._prepared.get(job_id) if isinstance(job_id, str) else None
        if prepared is not None and prepared.fingerprint == fingerprint:
            log.info("job %s: polled again; resending the result planned before", job_id)
        else:
            prepared = self._prepare(raw, fingerprint)
            if prepared is None:
                return False
            self._prepared[prepared.job_id] = prepared
            self._prepared.move_to_end(prepared.job_id)
            while len(self._prepared) > _CACHE_SIZE:
                self._prepared.popitem(last=False)
        self._deliver(prepared)
        return True

    def _prepare(self, raw: dict[str, Any], fingerprint: str) -> _Prepared | None:
        """Plan the job (or explain why not) into result batches; None for a job too
        broken to answer (no usable id)."""
        try:
            job = PlanJob.model_validate(lua_lists(raw))
        except ValidationError as exc:
            job_id, player = raw.get("job_id"), raw.get("player_index")
            if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
                log.error("the mod queued a job without a usable job_id, ignored: %s", first_error(exc))
                self._dropped.add(fingerprint)
                return None
            player = player if isinstance(player, int) and player >= 1 else None
            message = f"Factorion could not read this request: {first_error(exc)}"
            log.error("job %s: %s", job_id, message)
            self._status(job_id, player, "error", message)
            return _Prepared(job_id, fingerprint, player, [error_result(job_id, message)])

        region = job.request.region
        self._status(
            job.job_id,
            job.player_index,
            "info",
            f"Planning a {region.width}x{region.height} region ({job.request.options.mode})...",
        )
        try:
            response = self._plan(job)
        except PlanningError as exc:
            message = f"Factorion could not plan this region: {exc}"
            log.error("job %s: %s", job.job_id, message)
            self._status(job.job_id, job.player_index, "error", message)
            return _Prepared(job.job_id, fingerprint, job.player_index, [error_result(job.job_id, message)])
        placements = [p.shifted(job.origin.x, job.origin.y) for p in response.placements]
        batches = result_batches(job.job_id, placements, summarize(job, response), self.config.max_command_bytes)
        log.info(
            "job %s: planned %d placements (score %.3f) in %d batches",
            job.job_id,
            len(placements),
            response.score,
            len(batches),
        )
        return _Prepared(job.job_id, fingerprint, job.player_index, batches, len(placements))

    def _plan(self, job: PlanJob) -> PlanResponse:
        attempts = self.config.plan_attempts
        for attempt in range(1, attempts + 1):
            try:
                return self.planner.plan(job.request)
            except TransientPlanningError as exc:
                if attempt == attempts:
                    raise PlanningError(f"{exc} (tried {attempts} times)") from None
                delay = self.config.backoff(attempt - 1)
                log.warning("job %s: %s; retrying in %.2f s", job.job_id, exc, delay)
                self._status(
                    job.job_id,
                    job.player_index,
                    "warning",
                    f"{exc}; trying again in {delay:.1f} s ({attempt}/{attempts})",
                )
                if self._stop.wait(delay):
                    raise _Stopping from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _deliver(self, prepared: _Prepared) -> None:
        """Every batch in order, then the ack. An RCON failure propagates (the job stays
        queued in the mod and is delivered again after the reconnect)."""
        count = len(prepared.batches)
        if count > 1:
            self._status(
                prepared.job_id,
                prepared.player_index,
                "info",
                f"Sending {prepared.placements} placements in {count} batches...",
            )
        for batch in prepared.batches:
            reply = parse_reply(CMD_RESULT, self._send(command(CMD_RESULT, batch)), CommandReply)
            if not reply.ok:
                self._drop(prepared, f"batch {batch.batch_index + 1}/{count}", reply)
                return
        reply = parse_reply(CMD_ACK, self._send(command(CMD_ACK, AckMessage(job_id=prepared.job_id))), CommandReply)
        if not reply.ok:
            self._drop(prepared, "the ack", reply)
            return
        self.delivered.append(prepared.job_id)
        log.info("job %s: delivered in %d batches and acknowledged", prepared.job_id, count)

    def _drop(self, prepared: _Prepared, what: str, reply: CommandReply) -> None:
        # Either way the mod no longer holds the job, so there is nothing to resend.
        self._prepared.pop(prepared.job_id, None)
        if reply.code == "unknown_job":
            log.info("job %s: the mod no longer holds it (cancelled or already built); dropped", prepared.job_id)
        else:
            self._dropped.add(prepared.fingerprint)
            log.error("job %s: the mod refused %s (%s): %s", prepared.job_id, what, reply.code, reply.error)

    # ------------------------------------------------------------------ RCON

    def _status(self, job_id: str | None, player_index: int | None, level: str, message: str) -> None:
        status = StatusMessage.model_validate(
            {"job_id": job_id, "player_index": player_index, "level": level, "message": player_text(message)}
        )
        reply = parse_reply(CMD_STATUS, self._send(command(CMD_STATUS, status)), CommandReply)
        if not reply.ok:
            log.info("status for job %s not shown (%s): %s", job_id, reply.code, reply.error)

    def _handshake(self) -> VersionReply:
        reply = self._send(command(CMD_VERSION))
        try:
            data = json.loads(reply or "")
        except json.JSONDecodeError:
            raise BridgeError(
                f"the game at {self._where()} did not answer /{CMD_VERSION} (it said {(reply or '')[:200]!r}): "
                "is the Factorion mod installed and enabled in this save?"
            ) from None
        theirs = data.get("protocol_version") if isinstance(data, dict) else None
        mod = data.get("mod_version", "?") if isinstance(data, dict) else "?"
        if theirs != PROTOCOL_VERSION:
            self._mismatch(
                f"the Factorion mod {mod} speaks RCON protocol {theirs}, this bridge speaks {PROTOCOL_VERSION}: "
                "install a mod and a bridge (server) of matching versions"
            )
        try:
            version = VersionReply.model_validate(data)
        except ValidationError as exc:
            raise BridgeError(
                f"/{CMD_VERSION} answered JSON protocol {PROTOCOL_VERSION} does not allow: {exc}"
            ) from None
        if version.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            spoken = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
            self._mismatch(
                f"the Factorion mod {mod} sends message schema version {version.schema_version}, this bridge "
                f"speaks {spoken}: install a mod and a bridge (server) of matching versions"
            )
        return version

    def _mismatch(self, message: str) -> NoReturn:
        # Tell the players too: plain text over RCON is chat, which needs nothing from the mod.
        try:
            self._send(f"[Factorion bridge] {message}")
        except RCONBaseError:
            pass
        raise BridgeError(message)

    def _send(self, text: str) -> str | None:
        if self._rcon is None:
            raise BridgeError("not connected")  # a bug: every caller runs after connect()
        if len(text.encode()) > self.config.max_command_bytes:  # a bug: batching and player_text keep under it
            raise ValueError(f"a {len(text.encode())}-byte command is over the {self.config.max_command_bytes} limit")
        return self._rcon.send_command(text)

    def _close(self) -> None:
        if self._rcon is not None:
            self._rcon.close()
            self._rcon = None

    def _where(self) -> str:
        return f"{self.config.rcon_host}:{self.config.rcon_port}"


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause})" if cause is not None else str(exc)


# ---------------------------------------------------------------------- command line

ENV_PREFIX = "FACTORION_"
"""Environment variables the bridge reads (and nothing else does): FACTORION_RCON_HOST,
FACTORION_RCON_PORT, FACTORION_RCON_PASSWORD, FACTORION_SERVER_URL."""


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> BridgeConfig:
    """The configuration from the command line, defaults from FACTORION_* variables."""
    env = dict(os.environ if environ is None else environ)
    default = BridgeConfig()

    def env_or(name: str, fallback: object) -> str:
        return env.get(ENV_PREFIX + name, str(fallback))

    parser = argparse.ArgumentParser(
        prog="python -m server.bridge",
        description="Poll the Factorion mod over RCON, plan its jobs on the planning server, send the results back.",
    )
    parser.add_argument("--rcon-host", default=env_or("RCON_HOST", default.rcon_host), help="game host [%(default)s]")
    parser.add_argument(
        "--rcon-port", type=int, default=int(env_or("RCON_PORT", default.rcon_port)), help="RCON port [%(default)s]"
    )
    parser.add_argument(
        "--rcon-password",
        default=env.get(ENV_PREFIX + "RCON_PASSWORD", ""),
        help="RCON password (better: FACTORION_RCON_PASSWORD, which other users cannot see in ps)",
    )
    parser.add_argument(
        "--server-url", default=env_or("SERVER_URL", default.server_url), help="planning server [%(default)s]"
    )
    parser.add_argument("--poll-interval", type=float, default=default.poll_interval_s, help="idle poll interval, s")
    parser.add_argument("--rcon-timeout", type=float, default=default.rcon_timeout_s, help="RCON socket timeout, s")
    parser.add_argument("--backoff-max", type=float, default=default.backoff_max_s, help="longest reconnect wait, s")
    parser.add_argument("--plan-attempts", type=int, default=default.plan_attempts, help="tries per job [3]")
    parser.add_argument(
        "--max-command-bytes", type=int, default=default.max_command_bytes, help="longest RCON command [4000]"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level [INFO]")
    args = parser.parse_args(argv)
    if not args.rcon_password:
        parser.error("no RCON password: set FACTORION_RCON_PASSWORD (or pass --rcon-password)")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return BridgeConfig(
        rcon_host=args.rcon_host,
        rcon_port=args.rcon_port,
        rcon_password=args.rcon_password,
        server_url=args.server_url,
        poll_interval_s=args.poll_interval,
        rcon_timeout_s=args.rcon_timeout,
        backoff_max_s=args.backoff_max,
        plan_attempts=args.plan_attempts,
        max_command_bytes=args.max_command_bytes,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM; exit 2 with a message when it cannot go on."""
    config = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge = Bridge(config)
    log.info("bridge: game %s:%d, planning server %s", config.rcon_host, config.rcon_port, config.server_url)
    try:
        bridge.run(stop)
    except BridgeError as exc:
        print(f"factorion bridge: {exc}", file=sys.stderr)
        return 2
    finally:
        bridge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
