"""Fault injection for the sandbox: per endpoint, deterministic (seeded), applied in front of Flask.

A fault is configured for an endpoint written as in the OpenAPI document, e.g. ``"POST /auth/challenge"``
or ``"GET /auth/{referenceNumber}"`` (Latarnia and QR routes as ``"GET /latarnia/status"``), or ``"*"``
for every endpoint. Kinds:

* ``error``       — answer ``status`` (500 or 503) with a small JSON body;
* ``rate_limit``  — answer 429 with ``Retry-After: retry_after`` in KSeF's 429 shape;
* ``slow``        — wait ``delay`` seconds, then answer normally;
* ``drop``        — close the connection without any answer (the socket is shut down: Werkzeug hands it to
  the application as ``werkzeug.socket``, waitress through its channel).

``times`` limits how many requests a fault hits (``None``: all); ``probability`` (with the seed) picks
requests at random, reproducibly.

This lives in WSGI middleware rather than in a Flask hook because a dropped connection must never reach
Flask's error handling, which would turn it into a 500 answer.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime

FAULT_KINDS = ("error", "rate_limit", "slow", "drop")


@dataclass(frozen=True)
class Fault:
    """One configured fault (see the module docstring)."""

    kind: str
    status: int = 500
    retry_after: int = 1
    delay: float = 0.0
    times: int | None = 1
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (use one of {', '.join(FAULT_KINDS)})")


class FaultInjector:
    """The configured faults and the seeded random source that decides which requests they hit."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults: dict[str, list[Fault]] = {}
        self.hits: list[tuple[str, str]] = []

    def add(self, endpoint: str, fault: Fault) -> None:
        """Configure ``fault`` for ``endpoint`` (after any already configured)."""
        with self._lock:
            self._faults.setdefault(endpoint, []).append(fault)

    def clear(self, seed: int | None = None) -> None:
        """Remove every fault (and reseed, if ``seed`` is given)."""
        with self._lock:
            self._faults.clear()
            self.hits.clear()
            if seed is not None:
                self._rng = random.Random(seed)

    def take(self, endpoint: str) -> Fault | None:
        """The fault that hits this request to ``endpoint``, if any (consuming one of its ``times``)."""
        with self._lock:
            for key in (endpoint, "*"):
                faults = self._faults.get(key, [])
                for index, fault in enumerate(faults):
                    if fault.times is not None and fault.times <= 0:
                        continue
                    if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                        continue
                    if fault.times is not None:
                        faults[index] = replace(fault, times=fault.times - 1)
                    self.hits.append((endpoint, fault.kind))
                    return fault
            return None


def _json_response(
    start_response, status: str, body: dict, headers: list[tuple[str, str]], content_type: str
):
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("X-Sandbox-Fault", "injected"),
            *headers,
        ],
    )
    return [data]


def rate_limit_body(environ: dict, retry_after: int) -> tuple[dict, str]:
    """KSeF's 429 body in the format the request asked for (``X-Error-Format``)."""
    detail = f"Przekroczono limit żądań. Spróbuj ponownie po {retry_after} sekundach."
    if environ.get("HTTP_X_ERROR_FORMAT", "").lower() == "problem-details":
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return (
            {
                "title": "Too Many Requests",
                "status": 429,
                "instance": environ.get("PATH_INFO", ""),
                "detail": detail,
                "timestamp": now,
                "traceId": "sandbox-fault",
            },
            "application/problem+json",
        )
    return (
        {"status": {"code": 429, "description": "Too Many Requests", "details": [detail]}},
        "application/json",
    )


class FaultMiddleware:
    """WSGI middleware applying the :class:`FaultInjector`'s faults before the Flask app runs."""

    def __init__(self, wsgi_app, url_map, injector: FaultInjector, endpoint_name) -> None:
        self.wsgi_app = wsgi_app
        self.url_map = url_map
        self.injector = injector
        self.endpoint_name = endpoint_name

    def endpoint(self, environ: dict) -> str | None:
        """The operation a request is for, as in the OpenAPI document (``None``: no route matches)."""
        try:
            rule, _ = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except Exception:  # not found, method not allowed: no fault, Flask answers
            return None
        return self.endpoint_name(environ["REQUEST_METHOD"], rule.rule)

    def __call__(self, environ, start_response):
        endpoint = self.endpoint(environ)
        fault = self.injector.take(endpoint) if endpoint else None
        if fault is None:
            return self.wsgi_app(environ, start_response)
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return self.wsgi_app(environ, start_response)
        if fault.kind == "rate_limit":
            body, content_type = rate_limit_body(environ, fault.retry_after)
            return _json_response(
                start_response,
                "429 Too Many Requests",
                body,
                [("Retry-After", str(fault.retry_after))],
                content_type,
            )
        if fault.kind == "error":
            reason = {
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(fault.status, "Error")
            return _json_response(
                start_response,
                f"{fault.status} {reason}",
                {"title": reason, "status": fault.status, "detail": "Sandbox: injected fault."},
                [],
                "application/json",
            )
        return self._drop(environ)

    @staticmethod
    def _drop(environ):
        sock = environ.get("werkzeug.socket")
        if sock is None:  # waitress: the channel (and its socket) is reachable through this bound method
            channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
            sock = getattr(channel, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # Werkzeug treats a ConnectionError from the app as "the client went away" and writes nothing;
        # waitress cannot write its 500 answer on a socket that is already shut down.
        raise ConnectionAbortedError("sandbox: injected dropped connection")
