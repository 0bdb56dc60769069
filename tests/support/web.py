"""The portal for tests: an app over a given store, and a web client that sends CSRF tokens like the pages do."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from app import create_app
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD

_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def make_app(store: Store | None = None, **config: Any):
    """The portal over ``store`` (or over ``KLUCZNIK_INSTANCE`` when None), with cheap key derivation."""
    return create_app({"TESTING": True, "KLUCZNIK_STORE": store, "KLUCZNIK_KDF": TEST_KDF, **config})


class WebClient:
    """A Flask test client that sends the CSRF token like the portal's pages and htmx do."""

    def __init__(self, flask_client) -> None:
        self.client = flask_client
        self.csrf: str | None = None

    def _refresh_token(self, html: str) -> None:
        match = _CSRF_RE.search(html)
        if match:
            self.csrf = match.group(1)

    def get(self, url: str, *, htmx: bool = False, **kwargs: Any):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        response = self.client.get(url, headers=headers, **kwargs)
        if response.mimetype == "text/html":
            self._refresh_token(response.get_data(as_text=True))
        return response

    def token(self) -> str:
        if self.csrf is None:
            self.get("/health")
            self.get("/login")
        assert self.csrf, "no CSRF token found in the page"
        return self.csrf

    def post(self, url: str, data: dict[str, Any] | None = None, *, files: dict[str, tuple[bytes, str]] | None = None,
             htmx: bool = False, csrf: bool = True, **kwargs: Any):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        if csrf:
            headers["X-CSRFToken"] = self.token()
        payload: dict[str, Any] = dict(data or {})
        for name, (content, filename) in (files or {}).items():
            payload[name] = (BytesIO(content), filename)
        response = self.client.post(url, data=payload, headers=headers,
                                    content_type="multipart/form-data" if files else None, **kwargs)
        if response.mimetype == "text/html":
            self._refresh_token(response.get_data(as_text=True))
        return response

    def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD):
        self.get("/login")
        response = self.post("/login", {"username": username, "password": password})
        if response.status_code in (302, 303):
            # Login starts a new session (and a new CSRF token): fetch it from the page we land on.
            self.csrf = None
            landing = self.get(response.headers["Location"])
            if landing.status_code in (302, 303):  # e.g. the initial password must be changed first
                self.get(landing.headers["Location"])
        return response
