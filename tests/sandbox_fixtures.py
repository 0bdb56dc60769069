"""The ``sandbox_server`` fixture and the KSeF contract recorder.

``sandbox_server`` starts the sandbox WSGI app on 127.0.0.1 (a free port, Werkzeug's threaded server in a
thread) and yields a :class:`SandboxServer`: ``.url`` is the API base for ``KsefClient(base_url=...)``,
``.app``/``.state`` the app and its memory, and helpers seed owners and permissions, set delays, inject
faults, set Latarnia's availability, move the clock and walk a real XAdES login.

Every exchange that reaches the server is recorded; when the test ends, each ``/v2`` request and response is
validated against the official OpenAPI document with openapi-core, and a violation fails the test. Responses
produced by injected faults (500/503, drops) are not in the document and are only counted. The session
ends with a summary of the operations covered.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

import sandbox
from klucznik import xades
from klucznik.ksef.client import KsefClient
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import office
from sandbox import ca
from sandbox import signer
from sandbox.faults import Fault
from sandbox.state import Config
from sandbox.state import Identity
from sandbox.state import Person
from tests.conftest import NOW

#: Operations seen across the session: (METHOD, /path/template, status) -> count.
COVERAGE: dict[tuple[str, str, int], int] = {}
#: How many exchanges were validated, and how many were injected faults (not in the document).
TOTALS = {"validated": 0, "faults": 0, "requests_skipped": 0}

SKIP_REQUEST_HEADER = "X-Contract-Expect-Invalid"


@dataclass(frozen=True)
class Exchange:
    """One request the sandbox received and what it answered (``status`` ``None`` when dropped)."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int | None
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes


class ContractRecorder:
    """WSGI middleware that records each exchange (thread-safe)."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = Request(environ)
        seen: dict[str, Any] = {}

        def recording_start_response(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            seen["headers"] = tuple(headers)
            return start_response(status, headers, exc_info)

        def exchange(payload: bytes) -> Exchange:
            return Exchange(
                environ["REQUEST_METHOD"],
                environ.get("PATH_INFO", ""),
                environ.get("QUERY_STRING", ""),
                tuple(request.headers.items()),
                body,
                seen.get("status"),
                seen.get("headers", ()),
                payload,
            )

        # Recorded before the app runs (a dropped connection reaches the client before the app returns),
        # then completed before any byte of the answer is written.
        with self._lock:
            index = len(self.exchanges)
            self.exchanges.append(exchange(b""))
        payload = b"".join(self.wsgi_app(environ, recording_start_response))
        with self._lock:
            self.exchanges[index] = exchange(payload)
        return [payload]


def _template(path: str) -> str | None:
    """The OpenAPI path template of a ``/v2`` path (a literal path wins over a template)."""
    from sandbox.spec import spec_document

    relative = path.removeprefix("/v2")
    real = relative.strip("/").split("/")
    best: tuple[int, str] | None = None
    for candidate in spec_document()["paths"]:
        parts = candidate.strip("/").split("/")
        if len(parts) != len(real):
            continue
        if all(p.startswith("{") or p == r for p, r in zip(parts, real, strict=True)):
            literal = sum(1 for p in parts if not p.startswith("{"))
            if best is None or literal > best[0]:
                best = (literal, candidate)
    return best[1] if best else None


def validate(exchange: Exchange) -> list[str]:
    """Contract violations of one ``/v2`` exchange (empty list when it follows the document)."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse

    from sandbox.spec import openapi

    if not exchange.path.startswith("/v2/"):
        return []
    template = _template(exchange.path)
    if template is None:
        return [f"{exchange.method} {exchange.path}: not an operation of the OpenAPI document"]
    headers = dict(exchange.headers)
    environ = EnvironBuilder(
        path=exchange.path,
        method=exchange.method,
        query_string=exchange.query,
        headers=headers,
        data=exchange.body,
        base_url="http://127.0.0.1",
    ).get_environ()
    openapi_request = WerkzeugOpenAPIRequest(Request(environ))
    problems = []
    if SKIP_REQUEST_HEADER in headers:
        TOTALS["requests_skipped"] += 1
    else:
        try:
            openapi().validate_request(openapi_request)
        except Exception as exc:  # noqa: BLE001 - report every kind of violation
            problems.append(f"request {exchange.method} {exchange.path}: {exc!r} {exc.__cause__!r}")
    if exchange.status is None or dict(exchange.response_headers).get("X-Sandbox-Fault") == "injected":
        TOTALS["faults"] += 1
        return problems
    response = Response(
        exchange.response_body, status=exchange.status, headers=list(exchange.response_headers)
    )
    try:
        openapi().validate_response(openapi_request, WerkzeugOpenAPIResponse(response))
    except Exception as exc:  # noqa: BLE001
        problems.append(
            f"response {exchange.status} to {exchange.method} {exchange.path}: {exc!r} {exc.__cause__!r}"
        )
    if not problems:
        TOTALS["validated"] += 1
        key = (exchange.method, template, exchange.status)
        COVERAGE[key] = COVERAGE.get(key, 0) + 1
    return problems


class SandboxServer:
    """A running sandbox and the helpers tests use to arrange it."""

    def __init__(self, app, host: str, port: int, recorder: ContractRecorder) -> None:
        self.app = app
        self.state = sandbox.state_of(app)
        self.root = f"http://{host}:{port}"
        self.url = f"{self.root}/v2"
        self.recorder = recorder
        self.sleeps: list[float] = []

    # -- clients ---------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> KsefClient:
        """A :class:`KsefClient` for this sandbox whose sleeps are recorded in ``self.sleeps`` (not slept)."""
        kwargs.setdefault("sleep", self.sleeps.append)
        kwargs.setdefault(
            "retries", RetryPolicy(attempts=3, backoff=0.01, rate_limit_attempts=3, max_retry_after=60)
        )
        kwargs.setdefault("timeout", (2.0, 5.0))
        kwargs.setdefault("clock", self.state.now)
        return KsefClient(self.url, **kwargs)

    def signed_request(
        self,
        challenge: str,
        *,
        context_nip: str,
        nip: str | None = None,
        pesel: str | None = None,
        style: str = "enveloped",
        name: str | None = None,
    ) -> bytes:
        """An AuthTokenRequest for ``context_nip`` signed by the sandbox identity of ``nip`` or ``pesel``."""
        xml = xades.build_auth_token_request(challenge=challenge, nip=context_nip)
        certificate, key = ca.qualified_identity(nip=nip, pesel=pesel, name=name)
        return signer.sign(xml, certificate=certificate, private_key=key, style=style)

    def login(
        self,
        context_nip: str,
        *,
        nip: str | None = None,
        pesel: str | None = None,
        style: str = "enveloped",
        client: KsefClient | None = None,
    ) -> KsefClient:
        """Walk the real flow (challenge, signed XML, poll, redeem) and return the authenticated client."""
        client = client or self.client()
        challenge = client.challenge()
        signed = self.signed_request(
            challenge.challenge,
            context_nip=context_nip,
            nip=nip if (nip or pesel) else context_nip,
            pesel=pesel,
            style=style,
        )
        client.authenticate(signed, interval=0.0)
        return client

    # -- arranging -------------------------------------------------------------------------------

    def seed_owner(self, *, nip: str, pesel: str, description: str = "Właściciel testowy") -> None:
        """Link a PESEL to a NIP as its owner (what ``/testdata/person`` does)."""
        self.state.add_person(Person(nip=nip, pesel=pesel, description=description))

    def seed_permissions(
        self, *, context_nip: str, identifier_type: str, identifier: str, permissions: list[str]
    ) -> None:
        """Give an identifier permissions in a context (what ``/testdata/permissions`` does)."""
        self.state.add_test_permissions(context_nip, Identity(identifier_type, identifier), permissions)

    def set_delays(self, **fields: Any) -> None:
        """Change the sandbox timings (fields of :class:`sandbox.state.Config`)."""
        for key, value in fields.items():
            if not hasattr(self.state.config, key):
                raise AttributeError(key)
            setattr(self.state.config, key, value)

    def inject(self, endpoint: str, kind: str, **options: Any) -> None:
        """Inject a fault (see :mod:`sandbox.faults`) for ``endpoint``, e.g. ``"POST /auth/challenge"``."""
        self.state.faults.add(endpoint, Fault(kind=kind, **options))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.state.faults.clear()

    def set_availability(self, status: str, **kwargs: Any) -> None:
        """Set Latarnia's availability (AVAILABLE, MAINTENANCE, FAILURE, TOTAL_FAILURE)."""
        self.state.set_availability(status, **kwargs)

    def advance(self, **delta: float) -> None:
        """Move the sandbox clock forward, e.g. ``advance(minutes=11)``."""
        self.state.clock.advance(timedelta(**delta))

    def freeze(self, at: datetime) -> None:
        """Freeze the sandbox clock at ``at``."""
        self.state.clock.freeze(at)

    def exchanges(self, path_suffix: str | None = None) -> list[Exchange]:
        """The recorded exchanges (optionally only those whose path ends with ``path_suffix``)."""
        return [e for e in self.recorder.exchanges if path_suffix is None or e.path.endswith(path_suffix)]


@pytest.fixture
def sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox on 127.0.0.1 in a thread; every exchange is checked against the OpenAPI document."""
    app = sandbox.create_app({"TESTING": True, "SANDBOX_CONFIG": Config(), "SANDBOX_SEED": 1234})
    recorder = ContractRecorder(app.wsgi_app)
    app.wsgi_app = recorder
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ksef-sandbox", daemon=True)
    thread.start()
    try:
        yield SandboxServer(app, "127.0.0.1", server.server_port, recorder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    violations = [v for exchange in recorder.exchanges for v in validate(exchange)]
    if violations:
        pytest.fail("KSeF contract violations:\n" + "\n".join(violations), pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print how many KSeF operations the suite exercised against the OpenAPI document."""
    if not TOTALS["validated"] and not TOTALS["faults"]:
        return
    from sandbox.spec import spec_document

    operations = sorted({(m, p) for m, p, _ in COVERAGE})
    in_document = sum(
        1
        for methods in spec_document()["paths"].values()
        for m in methods
        if m in ("get", "post", "put", "delete")
    )
    write = terminalreporter.write_line
    terminalreporter.section("KSeF contract (official OpenAPI document)")
    write(
        f"{TOTALS['validated']} exchanges validated (request and response), {TOTALS['faults']} injected faults "
        f"counted apart, {TOTALS['requests_skipped']} deliberately invalid requests"
    )
    write(
        f"{len(operations)} operations covered of {in_document} in the document; "
        f"{len(COVERAGE)} (operation, status) pairs:"
    )
    for method, path, status in sorted(COVERAGE):
        write(f"  {method:6} {path}  {status}  x{COVERAGE[(method, path, status)]}")


#: The office's NIP in the wizard tests (the NIP the clients grant permissions to).
OFFICE_NIP = "5252955037"


@pytest.fixture
def sandbox_office(store, sandbox_server) -> office.OfficeProfile:
    """The office's profile, pointed at the running sandbox."""
    profile = office.OfficeProfile(name="Biuro Rachunkowe Test", nip=OFFICE_NIP, ksef_environment="sandbox",
                                   sandbox_url=sandbox_server.url)
    with store.write() as db:
        office.save_office(db, profile, actor="admin", at=NOW)
    return profile
