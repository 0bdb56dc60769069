"""Shared fixtures: a fresh encrypted instance per test, the app over it, and a logged-in web client.

The instance is real (SQLCipher file, keyring, snapshots) with cheap Argon2id parameters; nothing is
mocked. Fixture modules of other areas are listed in ``pytest_plugins``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients

pytest_plugins: list[str] = ["tests.xades_fixtures", "tests.sandbox_fixtures"]

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-1"
CLIENT_NIP = "5261040828"
#: The moment the tests live in (every record and check takes an explicit time).
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell."""
    for name in ("KLUCZNIK_INSTANCE", "KLUCZNIK_UNSEAL_KEY_FILE", "KLUCZNIK_HTTPS", "KLUCZNIK_IDLE_MINUTES",
                 "KLUCZNIK_TRUSTED_HOSTS", "KLUCZNIK_KEY_PASSWORD", "KLUCZNIK_USER", "KLUCZNIK_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def store(instance_path: Path) -> Store:
    """A set-up, unsealed instance with the administrator ``admin``."""
    s = Store(instance_path, kdf=TEST_KDF)
    s.recovery_code = s.setup(ADMIN, ADMIN_PASSWORD, at=NOW)  # type: ignore[attr-defined]
    return s


def make_app(store: Store | None = None, **config: Any):
    """The portal over ``store`` (or over ``KLUCZNIK_INSTANCE`` when None), with cheap key derivation."""
    return create_app({"TESTING": True, "KLUCZNIK_STORE": store, "KLUCZNIK_KDF": TEST_KDF, **config})


@pytest.fixture
def app(store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    return make_app(store)


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
        from io import BytesIO

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


@pytest.fixture
def anon(app) -> WebClient:
    return WebClient(app.test_client())


@pytest.fixture
def web(app) -> WebClient:
    client = WebClient(app.test_client())
    response = client.login()
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    return client


@pytest.fixture
def client_company(store: Store) -> clients.Client:
    with store.write() as db:
        return clients.create_client(db, clients.validate(nip=CLIENT_NIP, name="Przykładowa Spółka z o.o.",
                                                          email="biuro@przyklad.pl"), actor=ADMIN, at=NOW)


@pytest.fixture
def db(store: Store) -> Iterator[Any]:
    database = store.connect()
    yield database
    database.close()
