"""Shared fixtures: a fresh encrypted instance per test, the app over it, and a logged-in web client.

The instance is real (SQLCipher file, keyring, snapshots) with cheap Argon2id parameters; nothing is
mocked. Fixtures of other areas live in ``tests/fixtures/`` (listed in ``pytest_plugins``); plain helpers
and constants in ``tests/support/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW
from tests.support.web import WebClient
from tests.support.web import make_app

#: Fixtures by area (tests/fixtures/); plain helpers live in tests/support/ and are imported directly.
pytest_plugins: list[str] = ["tests.fixtures.signing", "tests.fixtures.sandbox", "tests.fixtures.office_identity"]


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


@pytest.fixture
def app(store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    return make_app(store)


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
