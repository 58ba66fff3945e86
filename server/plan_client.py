"""The bridge's client of the planning server: POST /plan, with every way it can fail
turned into a message a player can read."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from shared_schema.messages import PlanRequest, PlanResponse


class PlanningError(Exception):
    """A job could not be planned; the message is shown to the player."""


class TransientPlanningError(PlanningError):
    """The planning server is unreachable or busy; trying again may work."""


class PlanClient:
    """POST /plan on the planning server, errors turned into player-readable messages."""

    def __init__(self, server_url: str, timeout_margin_s: float, transport: httpx.BaseTransport | None = None):
        self.server_url = server_url.rstrip("/")
        self._margin = timeout_margin_s
        self._http = httpx.Client(base_url=self.server_url, transport=transport)

    def close(self) -> None:
        self._http.close()

    def plan(self, request: PlanRequest) -> PlanResponse:
        """The server's answer. Raises TransientPlanningError when it may answer later,
        PlanningError when it never will (it refused the request, or answered nonsense)."""
        timeout = request.options.time_budget_s + self._margin
        try:
            response = self._http.post("/plan", json=request.model_dump(mode="json"), timeout=timeout)
        except httpx.TimeoutException:
            raise TransientPlanningError(f"the planning server gave no answer within {timeout:.0f} s") from None
        except httpx.TransportError as exc:
            raise TransientPlanningError(f"cannot reach the planning server at {self.server_url} ({exc})") from None
        if response.status_code in (502, 503, 504):
            raise TransientPlanningError(
                f"the planning server is busy (HTTP {response.status_code}: {_detail(response)})"
            )
        if response.status_code >= 400:
            raise PlanningError(
                f"the planning server refused the request (HTTP {response.status_code}): {_detail(response)}"
            )
        try:
            return PlanResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise PlanningError(f"the planning server's answer could not be read: {first_error(exc)}") from None


def _detail(response: httpx.Response) -> str:
    """FastAPI's `detail` (a string, or a list of field errors) or the start of the body."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in d.get('loc', []))}: {d.get('msg', '')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return str(detail)


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}" if where else f"{err['msg']}{more}"
