"""KSeF's API rate limits in the sandbox: the official values, per group, per (context, IP address).

Where the numbers come from: every operation of the official OpenAPI document carries ``x-rate-limits``
(``perSecond``, ``perMinute``, ``perHour``) and its 429 answer names the operation's *group*
(``other``, ``onlineSession``, ``invoiceSend``, ..., or ``-`` for the public operations). The table is read
from the document the sandbox ships, so it changes when the document does.

How they are counted (the official page on API limits, 14.09.2026):

* separately for every pair (context, IP address); the context is the one of the bearer token. The public
  operations (``/auth/challenge``, ``/auth/xades-signature``, the authentication status and tokens, the TEST
  data helpers; group ``-``) are counted per IP address only;
* a named group shares one counter for all its operations (``onlineSession`` = opening *and* closing an
  interactive session); the default group ``other`` and the public group ``-`` give every operation its own
  counter ("każdy taki endpoint posiada własny licznik limitów");
* in sliding windows of the last second, minute and hour, all at once; the first threshold crossed blocks;
* a blocked request is answered 429 with ``Retry-After`` (whole seconds) and KSeF's 429 body in the format
  the request asked for; it is not counted. Requests that keep coming while blocked get the remaining time.

Time is the machine's monotonic clock plus the sandbox clock's offset, so a test can ``advance`` the sandbox
clock past a minute or an hour window without waiting (freezing the clock does not stop these windows).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace

#: Window lengths in seconds, by the field names of ``x-rate-limits``.
WINDOWS = (("perSecond", 1.0), ("perMinute", 60.0), ("perHour", 3600.0))

#: The group name the document uses for the public operations (counted per IP address).
PUBLIC_GROUP = "-"
#: Groups where every operation has its own counter (see the module docstring).
PER_OPERATION_GROUPS = frozenset({"other", PUBLIC_GROUP})

_GROUP_CELL = re.compile(r"\*\*Limity liczby żądań\*\*(?:\s*\|\s*[\d-]+){3}\s*\|\s*([A-Za-z-]+)")


@dataclass(frozen=True)
class Limit:
    """The thresholds of one group: requests per second, minute and hour (``None``: no threshold)."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None

    @classmethod
    def from_json(cls, data: dict) -> Limit:
        """From ``{"perSecond": 10, "perMinute": 30, "perHour": 120}`` (missing keys: no threshold)."""
        return cls(data.get("perSecond"), data.get("perMinute"), data.get("perHour"))

    def to_json(self) -> dict:
        """As in ``x-rate-limits``."""
        out = {}
        for (name, _), value in zip(WINDOWS, self.thresholds(), strict=True):
            if value is not None:
                out[name] = value
        return out

    def thresholds(self) -> tuple[int | None, int | None, int | None]:
        """(per second, per minute, per hour)."""
        return (self.per_second, self.per_minute, self.per_hour)


@dataclass(frozen=True)
class Operation:
    """One operation's group and official limit."""

    group: str
    limit: Limit


def official_table(document: dict) -> dict[str, Operation]:
    """``{"GET /certificates/limits": Operation("other", Limit(10, 30, 120)), ...}`` from the document."""
    table: dict[str, Operation] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "x-rate-limits" not in operation:
                continue
            described = ((operation.get("responses") or {}).get("429") or {}).get("description", "")
            found = _GROUP_CELL.search(described)
            group = found.group(1) if found else "other"
            table[f"{method.upper()} {path}"] = Operation(group, Limit.from_json(operation["x-rate-limits"]))
    return table


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: wait ``retry_after`` seconds; ``window`` names the threshold crossed."""

    retry_after: int
    window: str
    threshold: int
    group: str


class RateLimiter:
    """Sliding-window counters per (bucket, context, IP); thread-safe.

    ``table`` maps endpoints (``"GET /certificates/limits"``) to their :class:`Operation`; ``overrides``
    replaces a group's :class:`Limit` (test control); ``now`` returns seconds (monotonic).
    """

    def __init__(self, table: dict[str, Operation], *, now: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.now = now
        self.enabled = False
        self.overrides: dict[str, Limit] = {}
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str | None, str], tuple[deque, deque, deque]] = {}
        self._blocked: dict[tuple[str, str | None, str], float] = {}
        self.accepted = 0
        self.refused = 0

    def official(self) -> dict[str, Limit]:
        """The limit of every group as the document sets it."""
        out: dict[str, Limit] = {}
        for operation in self.table.values():
            out.setdefault(operation.group, operation.limit)
        return out

    def groups(self) -> dict[str, Limit]:
        """The limit of every group now (official values with the overrides applied)."""
        return {**self.official(), **self.overrides}

    def limit_for(self, endpoint: str) -> tuple[str, Limit] | None:
        """(group, limit) of ``endpoint``; ``None`` when the document sets no limit for it."""
        operation = self.table.get(endpoint)
        if operation is None:
            return None
        return operation.group, self.overrides.get(operation.group, operation.limit)

    def configure(
        self,
        *,
        enabled: bool | None = None,
        groups: dict[str, Limit] | None = None,
        scale: float | None = None,
        reset: bool = False,
    ) -> None:
        """Turn limiting on or off, override groups, or scale every official limit (``scale=10``: TEST's).

        ``reset`` forgets the overrides and every counter first.
        """
        with self._lock:
            if reset:
                self.overrides.clear()
                self._hits.clear()
                self._blocked.clear()
            if scale is not None:  # of the official values, however often it is set
                for group, limit in self.official().items():
                    self.overrides[group] = scaled(limit, scale)
            if groups:
                self.overrides.update(groups)
            if enabled is not None:
                self.enabled = enabled

    def check(self, endpoint: str, *, context: str | None, ip: str) -> Refusal | None:
        """Count one request to ``endpoint``; a :class:`Refusal` when it is over a limit (not counted)."""
        if not self.enabled:
            return None
        found = self.limit_for(endpoint)
        if found is None:
            return None
        group, limit = found
        if group == PUBLIC_GROUP:
            context = None
        bucket = endpoint if group in PER_OPERATION_GROUPS else group
        key = (bucket, context, ip)
        with self._lock:
            now = self.now()
            blocked_until = self._blocked.get(key)
            if blocked_until is not None and now < blocked_until:
                self.refused += 1
                return Refusal(math.ceil(blocked_until - now), "blocked", 0, group)
            windows = self._hits.setdefault(key, (deque(), deque(), deque()))
            refusal: Refusal | None = None
            for (name, length), threshold, hits in zip(WINDOWS, limit.thresholds(), windows, strict=True):
                while hits and hits[0] <= now - length:
                    hits.popleft()
                if threshold is not None and len(hits) >= threshold:
                    free_at = hits[len(hits) - threshold] + length
                    wait = max(1, math.ceil(free_at - now))
                    if refusal is None or wait > refusal.retry_after:
                        refusal = Refusal(wait, name, threshold, group)
            if refusal is not None:
                self._blocked[key] = now + refusal.retry_after
                self.refused += 1
                return refusal
            for hits in windows:
                hits.append(now)
            self.accepted += 1
            return None

    def snapshot(self) -> dict:
        """What the test-control route shows: on/off, the groups' limits, counts."""
        with self._lock:
            return {
                "enabled": self.enabled,
                "groups": {group: limit.to_json() for group, limit in sorted(self.groups().items())},
                "overridden": sorted(self.overrides),
                "accepted": self.accepted,
                "refused": self.refused,
            }


class RateLimitMiddleware:
    """WSGI middleware answering 429 before the app runs when a request is over its limit.

    ``endpoint_of(environ)`` names the operation as in the document (``None``: not an API operation);
    ``context_of(bearer)`` is the context NIP of a bearer token the sandbox issued (``None`` if unknown);
    ``timestamp()`` is the sandbox's ISO time for the problem-details body.
    """

    def __init__(self, wsgi_app, limiter: RateLimiter, *, endpoint_of, context_of, timestamp) -> None:
        self.wsgi_app = wsgi_app
        self.limiter = limiter
        self.endpoint_of = endpoint_of
        self.context_of = context_of
        self.timestamp = timestamp

    def __call__(self, environ, start_response):
        if not self.limiter.enabled:
            return self.wsgi_app(environ, start_response)
        endpoint = self.endpoint_of(environ)
        if endpoint is None:
            return self.wsgi_app(environ, start_response)
        header = environ.get("HTTP_AUTHORIZATION", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        context = self.context_of(bearer) if bearer else None
        refusal = self.limiter.check(endpoint, context=context, ip=environ.get("REMOTE_ADDR", ""))
        if refusal is None:
            return self.wsgi_app(environ, start_response)
        body, content_type, headers = too_many_requests(
            refusal,
            problem_details=environ.get("HTTP_X_ERROR_FORMAT", "").lower() == "problem-details",
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            timestamp=self.timestamp(),
            trace_id=secrets.token_hex(16),
        )
        start_response(
            "429 Too Many Requests",
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        return [body]


def too_many_requests(
    refusal: Refusal, *, problem_details: bool, path: str, timestamp: str, trace_id: str
) -> tuple[bytes, str, list[tuple[str, str]]]:
    """KSeF's 429 answer: (body, content type, headers) in the format the request asked for."""
    unit = {"perSecond": "na sekundę", "perMinute": "na minutę", "perHour": "na godzinę"}.get(refusal.window)
    if unit:
        detail = (
            f"Przekroczono limit {refusal.threshold} żądań {unit}. "
            f"Spróbuj ponownie po {refusal.retry_after} sekundach."
        )
    else:
        detail = f"Dostęp tymczasowo zablokowany. Spróbuj ponownie po {refusal.retry_after} sekundach."
    if problem_details:
        body: dict = {
            "title": "Too Many Requests",
            "status": 429,
            "instance": path,
            "detail": detail,
            "timestamp": timestamp,
            "traceId": trace_id,
        }
        content_type = "application/problem+json"
    else:
        body = {"status": {"code": 429, "description": "Too Many Requests", "details": [detail]}}
        content_type = "application/json"
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return data, content_type, [("Retry-After", str(refusal.retry_after))]


def scaled(limit: Limit, factor: float) -> Limit:
    """``limit`` with every threshold multiplied by ``factor`` (at least 1)."""
    return replace(
        limit,
        **{
            field: None if value is None else max(1, round(value * factor))
            for field, value in zip(("per_second", "per_minute", "per_hour"), limit.thresholds(), strict=True)
        },
    )


def floor_seconds(requests: int, limit: Limit) -> float:
    """The least time ``requests`` calls to one counter can take under ``limit`` (sliding windows).

    The earliest schedule: every call as soon as all three windows allow it, the first at 0; the answer is
    the moment of the last call. This is the floor a paced client is measured against.
    """
    times: list[float] = []
    for index in range(requests):
        at = times[-1] if times else 0.0
        for (_, length), threshold in zip(WINDOWS, limit.thresholds(), strict=True):
            if threshold is not None and index >= threshold:
                at = max(at, times[index - threshold] + length)
        times.append(at)
    return times[-1] if times else 0.0
