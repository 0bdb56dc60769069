"""Latarnia: KSeF's availability service (failures and maintenance announced by the Ministry).

Not in KSeF's API document; known from the official clients: ``GET /status`` → ``{status, messages[]}``
(AVAILABLE, MAINTENANCE, FAILURE, TOTAL_FAILURE) and ``GET /messages``. It has been down for hours at a
time and, on TEST/DEMO, has kept answering stale failures, so it must never be the only signal of KSeF's
availability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from klucznik.ksef.errors import KsefError
from klucznik.ksef.models import Availability
from klucznik.ksef.models import AvailabilityMessage
from klucznik.text import Text

if TYPE_CHECKING:
    from klucznik.ksef.transport import Transport


class Latarnia:
    """Latarnia of one environment (``url`` ``None``: the environment has none, e.g. DEMO)."""

    def __init__(self, transport: Transport, url: str | None) -> None:
        self.transport = transport
        self.url = (url or "").rstrip("/") or None

    def _get(self, path: str) -> Any:
        if not self.url:
            raise KsefError(
                Text(
                    "Dla tego środowiska KSeF nie ma usługi Latarnia (komunikatów o dostępności).",
                    "This KSeF environment has no Latarnia (availability) service.",
                ),
                code="ksef_latarnia_missing",
            )
        return self.transport.json("GET", f"{self.url}{path}", idempotent=True)

    def status(self) -> Availability:
        """``GET /status``: is KSeF available, and the current notices."""
        data = self._get("/status")
        return Availability(
            status=data["status"],
            messages=tuple(AvailabilityMessage.from_json(m) for m in data.get("messages") or ()),
        )

    def messages(self) -> tuple[AvailabilityMessage, ...]:
        """``GET /messages``: the current failure and maintenance notices."""
        return tuple(AvailabilityMessage.from_json(m) for m in self._get("/messages"))
