"""Schemathesis against the sandbox: every operation the sandbox implements, generated from the official
API 2.7 document, must be answered as the document says (status codes, content types, headers, bodies).

The sandbox runs on loopback in a thread (rate limits off); each generated request carries a real token of
the kind the operation wants (authentication, access or refresh), taken from a real XAdES login. The
examples are derandomized, so a run is reproducible; the whole run stays within about half a minute.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.serving import make_server

import sandbox
from klucznik import xades
from klucznik.ksef.client import KsefClient
from sandbox import ca
from sandbox import endpoint_name
from sandbox import signer
from sandbox.spec import spec_document

CONTEXT = "5261040828"


def implemented() -> list[str]:
    """The document's operations the sandbox serves, as ``"GET /certificates/limits"``."""
    app = sandbox.create_app({"TESTING": True})
    return sorted(
        {
            endpoint_name(method, rule.rule)
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/v2/")
            for method in rule.methods or ()
            if method not in ("HEAD", "OPTIONS")
        }
    )


def _document() -> dict:
    document = copy.deepcopy(spec_document())
    document["servers"] = [{"url": "http://127.0.0.1/v2"}]
    return document


IMPLEMENTED = implemented()
SCHEMA = schemathesis.openapi.from_dict(_document()).include(name=IMPLEMENTED)

#: Tokens by the kind an operation wants (see the document's descriptions of each operation).
AUTHENTICATION_TOKEN = {"GET /auth/{referenceNumber}", "POST /auth/token/redeem"}
REFRESH_TOKEN = {"POST /auth/token/refresh"}


class Live:
    """The running sandbox and fresh tokens for the generated requests."""

    def __init__(self, url: str, state) -> None:
        self.url = url
        self.state = state
        self.client: KsefClient | None = None

    def _submit(self, client: KsefClient):
        challenge = client.challenge()
        certificate, key = ca.qualified_identity(nip=CONTEXT)
        xml = xades.build_auth_token_request(challenge=challenge.challenge, nip=CONTEXT)
        return client.submit_xades(
            signer.sign(xml, certificate=certificate, private_key=key, style="enveloped")
        )

    def token_for(self, operation: str) -> str:
        """A valid token of the kind ``operation`` wants (a new login when the last one was ended)."""
        if operation in AUTHENTICATION_TOKEN:
            with KsefClient(self.url) as client:
                return self._submit(client).authentication_token.token
        client = self.client
        if client is None or client.tokens is None or self._revoked(client):
            client = self.client = KsefClient(self.url, sleep=lambda _: None)
            init = self._submit(client)
            client.wait_for_auth(init, interval=0)
            client.redeem(init.authentication_token.token)
        if operation in REFRESH_TOKEN:
            return client.tokens.refresh_token.token
        return client.tokens.access_token()

    def _revoked(self, client: KsefClient) -> bool:
        found = self.state.tokens.get(client.tokens.access.token)
        return found is None or self.state.auths[found.reference].revoked


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = sandbox.create_app({"TESTING": True, "SANDBOX_CONFIG": {"auth_pending_polls": 0}})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}/v2", sandbox.state_of(app))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_run_covers_what_the_sandbox_serves():
    names = {operation.ok().label for operation in SCHEMA.get_all_operations()}
    assert names == set(IMPLEMENTED) and len(names) >= 29


@SCHEMA.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_sandbox_answers_as_the_document_says(case, live):
    headers = {"Authorization": f"Bearer {live.token_for(case.operation.label)}"}
    case.call_and_validate(
        base_url=live.url,
        headers=headers,
        # The document's "valid" requests include unknown reference numbers and serials, which KSeF (and the
        # sandbox) refuse with a documented 400; every other built-in check runs.
        excluded_checks=[positive_data_acceptance],
        timeout=10,
    )
