"""A fake Factorio game for the bridge's tests: a real RCON socket server and a Python
stand-in for the mod's side of the command protocol (docs/BRIDGE.md).

`FakeRconServer` listens on 127.0.0.1 (port 0) and speaks Source RCON framing the way
Factorio does: each packet is `<int32 size><int32 id><int32 type><body>\\0\\0`, little
endian, `size` counting everything after itself. An auth packet (type 3) gets exactly
one auth response (type 2) carrying the request's id, or id -1 for a wrong password
(then the socket closes); each command (type 2) gets exactly one response (type 0)
with the same id, however long the reply. A packet over 4096 bytes closes the
connection, as the game has been seen to do. Faults can be injected: refuse the next
connections, or close the socket before or after a matching command runs.

`FakeMod` holds a job queue and records what the bridge sent: status messages,
result batches (in arrival order), jobs built on ack, chat lines.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.rcon_protocol import CMD_ACK, CMD_POLL, CMD_RESULT, CMD_STATUS, CMD_VERSION, PROTOCOL_VERSION
from shared_schema import SCHEMA_VERSION
from shared_schema.messages import Placement, PlanResult

AUTH = 3
EXECCOMMAND = 2
AUTH_RESPONSE = 2
RESPONSE_VALUE = 0
MAX_PACKET = 4096  # the size field's limit: id, type, body and both terminators


def encode_packet(packet_id: int, packet_type: int, body: str) -> bytes:
    payload = struct.pack("<ii", packet_id, packet_type) + body.encode() + b"\0\0"
    return struct.pack("<i", len(payload)) + payload


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf.extend(chunk)
    return bytes(buf)


class _Oversized(Exception):
    pass


def read_packet(conn: socket.socket) -> tuple[int, int, str] | None:
    """(id, type, body) of the next packet, None when the peer closed."""
    head = _recv_exactly(conn, 4)
    if head is None:
        return None
    (size,) = struct.unpack("<i", head)
    if size > MAX_PACKET:
        raise _Oversized(f"packet of {size} bytes")
    if size < 10:
        raise ValueError(f"packet size {size} is below the minimum of 10")
    payload = _recv_exactly(conn, size)
    if payload is None:
        return None
    packet_id, packet_type = struct.unpack("<ii", payload[:8])
    if payload[-2:] != b"\0\0":
        raise ValueError("packet not terminated by two NUL bytes")
    return packet_id, packet_type, payload[8:-2].decode()


@dataclass
class Fault:
    """Close the connection when a command containing `match` arrives: 'before' it runs
    (the command is lost) or 'after' it ran (its reply is lost); `times` then disarms."""

    match: str
    when: str = "before"
    times: int = 1
    refuse_after: int = 0  # then also refuse this many reconnections


class FakeRconServer:
    """A Factorio-like RCON server; `handler(command) -> reply` plays the game."""

    def __init__(self, password: str, handler: Callable[[str], str]):
        self.password = password
        self.handler = handler
        self.faults: list[Fault] = []
        self.refuse_next = 0  # connections to close before answering the auth packet
        self.connections = 0  # accepted, including refused ones
        self.commands: list[str] = []  # every command received, in order (faulted ones too)
        self.errors: list[str] = []  # protocol violations by the client
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.05)  # accept() wakes up to notice close()
        self.port: int = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._closing = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._sock.close()
        with self._lock:
            for conn in self._open:
                _shut(conn)
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeRconServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._session(conn)
        except _Oversized as exc:
            self.errors.append(str(exc))
        except (OSError, ValueError) as exc:
            if not self._closing:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            _shut(conn)
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)

    def _session(self, conn: socket.socket) -> None:
        with self._lock:
            refuse = self.refuse_next > 0
            self.refuse_next -= refuse
        packet = read_packet(conn)
        if packet is None or refuse:
            return
        packet_id, packet_type, body = packet
        if packet_type != AUTH:
            self.errors.append(f"first packet has type {packet_type}, not auth")
            return
        if body != self.password:
            conn.sendall(encode_packet(-1, AUTH_RESPONSE, ""))
            return
        conn.sendall(encode_packet(packet_id, AUTH_RESPONSE, ""))
        while (packet := read_packet(conn)) is not None:
            packet_id, packet_type, body = packet
            if packet_type != EXECCOMMAND:
                self.errors.append(f"packet of type {packet_type} after auth")
                return
            self.commands.append(body)
            fault = self._fault_for(body)
            if fault == "before":
                return
            reply = self.handler(body)
            if fault == "after":
                return
            conn.sendall(encode_packet(packet_id, RESPONSE_VALUE, reply))

    def _fault_for(self, body: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.match in body:
                    fault.times -= 1
                    self.refuse_next += fault.refuse_after
                    return fault.when
        return None


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


@dataclass
class Built:
    """A job the mod built on ack: its status and every placement of its batches."""

    job_id: str
    status: str
    message: str
    placements: list[Placement]


@dataclass
class FakeMod:
    """The mod's command side, as docs/BRIDGE.md specifies it."""

    protocol_version: int = PROTOCOL_VERSION
    schema_version: int = SCHEMA_VERSION
    mod_version: str = "0.1.0"
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # queued, not yet acknowledged
    staged: dict[str, list[PlanResult]] = field(default_factory=dict)
    batches: list[PlanResult] = field(default_factory=list)  # every batch accepted, in arrival order
    built: list[Built] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    chat: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.jobs[job["job_id"]] = job

    def __call__(self, text: str) -> str:
        with self.lock:
            if not text.startswith("/"):
                self.chat.append(text)
                return ""
            name, _, argument = text[1:].partition(" ")
            if name == CMD_VERSION:
                return _print(
                    {
                        "protocol_version": self.protocol_version,
                        "schema_version": self.schema_version,
                        "mod_version": self.mod_version,
                    }
                )
            if name == CMD_POLL:
                # an empty Lua table comes out of table_to_json as {}
                return _print({"jobs": list(self.jobs.values()) or {}})
            if name == CMD_STATUS:
                self.statuses.append(json.loads(argument))
                return _print({"ok": True})
            if name == CMD_RESULT:
                return _print(self._result(argument))
            if name == CMD_ACK:
                return _print(self._ack(json.loads(argument)["job_id"]))
            return f'Unknown command "{name}".\n'

    def _result(self, argument: str) -> dict[str, Any]:
        result = PlanResult.model_validate_json(argument)
        if result.job_id not in self.jobs:
            return {"ok": False, "code": "unknown_job", "error": f"no job {result.job_id}"}
        staged = self.staged.setdefault(result.job_id, [])
        if result.batch_index == 0:
            staged.clear()  # a delivery starting over replaces the partial one
        elif result.batch_index != len(staged) or result.batch_count != staged[0].batch_count:
            del self.jobs[result.job_id]
            return {"ok": False, "code": "refused", "error": f"batch {result.batch_index} out of order"}
        staged.append(result)
        self.batches.append(result)
        return {"ok": True}

    def _ack(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.jobs:
            return {"ok": False, "code": "unknown_job", "error": f"no job {job_id}"}
        staged = self.staged.pop(job_id, [])
        if not staged or len(staged) != staged[0].batch_count:
            del self.jobs[job_id]
            return {"ok": False, "code": "refused", "error": "ack before every batch arrived"}
        del self.jobs[job_id]
        placements = [p for batch in staged for p in batch.placements]
        self.built.append(Built(job_id, staged[0].status, staged[0].message, placements))
        return {"ok": True}


def _print(value: Any) -> str:
    return json.dumps(value) + "\n"  # rcon.print ends the line
