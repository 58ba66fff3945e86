"""The RCON command protocol between the bridge and the mod (protocol version 1).

The mod cannot open sockets, so every exchange is the bridge sending one console
command over RCON and the mod answering it with one `rcon.print` of JSON. The mod
registers five commands; each takes one JSON object after a space (or nothing):

| command                   | argument              | the mod's reply            |
|---------------------------|-----------------------|----------------------------|
| `/factorion-version`      | none                  | `VersionReply`             |
| `/factorion-poll`         | none                  | `PollReply` (jobs to plan) |
| `/factorion-status <json>`| `StatusMessage`       | `CommandReply`             |
| `/factorion-result <json>`| `PlanResult` (a batch)| `CommandReply`             |
| `/factorion-ack <json>`   | `AckMessage`          | `CommandReply`             |

docs/BRIDGE.md is the prose contract the mod implements; this module is its code.
The job and result payloads are `PlanJob` and `PlanResult` of `shared_schema.messages`.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared_schema.messages import Placement, PlanResult

PROTOCOL_VERSION = 1
"""Version of this command set and its JSON shapes; `schema_version` versions the messages."""

CMD_VERSION = "factorion-version"
CMD_POLL = "factorion-poll"
CMD_STATUS = "factorion-status"
CMD_RESULT = "factorion-result"
CMD_ACK = "factorion-ack"

MAX_COMMAND_BYTES = 4000
"""Longest command (UTF-8 bytes, `/name ` included) the bridge sends. Factorio has been
seen dropping the RCON session on packets over about 4 KiB, so stay under the Source
RCON limit of 4096 bytes per packet (body plus 10 bytes of id, type and terminators)."""

MAX_MESSAGE_CHARS = 500
"""Longest text the bridge asks the mod to show a player."""

MIN_COMMAND_BYTES = 2600
"""The smallest `max_command_bytes` that always fits a status or an error result: a
message of MAX_MESSAGE_CHARS characters takes at most 4 UTF-8 bytes each."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionReply(_Model):
    """`/factorion-version`: which protocol and message schema the mod speaks."""

    protocol_version: int = Field(description="This command protocol's version the mod speaks.")
    schema_version: int = Field(description="shared_schema message version of its PlanJob/PlanResult.")
    mod_version: str = Field(description="The mod's own version (info.json), for messages.")


class PollReply(_Model):
    """`/factorion-poll`: every job the mod holds that is not yet acknowledged, oldest first.

    Jobs stay raw here: each is validated as a `PlanJob` on its own, so one bad job is
    answered with an error result instead of blocking the rest."""

    jobs: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("jobs", mode="before")
    @classmethod
    def _empty_table(cls, value: Any) -> Any:
        # helpers.table_to_json writes an empty Lua table as {}, not []
        return [] if value == {} else value


def lua_lists(raw_job: dict[str, Any]) -> dict[str, Any]:
    """The job with its request's list fields that arrived as {} (an empty Lua table)
    turned into []; anything else is left for PlanJob to judge."""
    request = raw_job.get("request")
    if not isinstance(request, dict) or not any(request.get(k) == {} for k in _LIST_FIELDS):
        return raw_job
    fixed = {k: ([] if k in _LIST_FIELDS and v == {} else v) for k, v in request.items()}
    return {**raw_job, "request": fixed}


_LIST_FIELDS = ("sources", "sinks", "blocked")


class CommandReply(_Model):
    """The mod's answer to status, result and ack commands."""

    ok: bool
    code: Literal["unknown_job", "refused"] | None = Field(
        default=None,
        description="When not ok: 'unknown_job' (the mod no longer holds the job: done, cancelled or never "
        "seen) or 'refused' (malformed, stale or out-of-order; the mod told the player and dropped the job).",
    )
    error: str = Field(default="", description="When not ok: why, for the bridge's log.")


class StatusMessage(_Model):
    """`/factorion-status`: something to tell a player (or every player when no index)."""

    job_id: str | None = Field(default=None, max_length=64, description="The job this is about, if any.")
    player_index: int | None = Field(default=None, ge=1, description="Whom to tell; absent: every player.")
    level: Literal["info", "warning", "error"]
    message: str = Field(max_length=MAX_MESSAGE_CHARS)


class AckMessage(_Model):
    """`/factorion-ack`: every batch of this job's result was delivered; build it and forget the job."""

    job_id: str = Field(min_length=1, max_length=64)


class ModReplyError(Exception):
    """The mod answered a command with something the protocol does not allow."""


def command(name: str, payload: BaseModel | None = None) -> str:
    """The console command text: `/name` or `/name <compact JSON>`, None fields left out
    (Lua's json_to_table turns null into nil anyway)."""
    if payload is None:
        return f"/{name}"
    return f"/{name} {payload.model_dump_json(exclude_none=True)}"


M = TypeVar("M", bound=BaseModel)


def parse_reply(name: str, reply: str | None, model: type[M]) -> M:
    """Read the mod's JSON reply to `/name`. A blank reply is what the game sends when a
    command handler raised (the error goes to the game's log, not to RCON)."""
    if not reply:
        raise ModReplyError(f"/{name} got an empty reply: the mod's handler failed (see the game's log)")
    try:
        return model.model_validate(json.loads(reply))
    except json.JSONDecodeError:
        raise ModReplyError(f"/{name} did not answer JSON; the game said: {reply[:200]!r}") from None
    except ValidationError as exc:
        raise ModReplyError(f"/{name} answered JSON the protocol does not allow: {exc}") from None


def player_text(text: str) -> str:
    """`text` on one line (control characters would cost 6 bytes each as JSON escapes),
    cut to MAX_MESSAGE_CHARS."""
    return " ".join(text.split())[:MAX_MESSAGE_CHARS]


def result_batches(
    job_id: str, placements: list[Placement], message: str, max_command_bytes: int = MAX_COMMAND_BYTES
) -> list[PlanResult]:
    """An 'ok' result split into batches whose `/factorion-result` commands each fit in
    `max_command_bytes`, placements kept in order. Batch 0 carries `message`; no
    placements still make one (empty) batch. Raises ValueError if one placement alone
    cannot fit."""
    # The overhead is measured with the message and the widest batch numbers possible
    # (never more batches than placements + 1), so every real batch is no larger.
    message = player_text(message)
    n = len(placements)
    empty = PlanResult(job_id=job_id, status="ok", message=message, batch_index=n, batch_count=n + 1)
    budget = max_command_bytes - len(command(CMD_RESULT, empty).encode())
    groups: list[list[Placement]] = [[]]
    used = 0
    for p in placements:
        size = len(p.model_dump_json(exclude_none=True).encode()) + 1  # + the separating comma
        if size > budget:
            raise ValueError(f"a {max_command_bytes}-byte command cannot carry even one placement ({p.name})")
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(p)
        used += size
    return [
        PlanResult(
            job_id=job_id,
            status="ok",
            message=message if i == 0 else "",
            placements=group,
            batch_index=i,
            batch_count=len(groups),
        )
        for i, group in enumerate(groups)
    ]


def error_result(job_id: str, message: str) -> PlanResult:
    """The one-batch result telling the player why nothing will be built."""
    return PlanResult(job_id=job_id, status="error", message=player_text(message))
