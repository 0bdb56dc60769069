"""Web security of the foundation: CSRF, headers and CSP, cookies, throttling, sessions, sealed portal, errors.

Real app, real encrypted instance, the Flask test client. "Nothing changed" is proved by comparing a dump
of every table and the keyring file before and after.
"""

from __future__ import annotations

import json
import re
import shutil
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import users
from klucznik.throttle import LoginThrottle
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import dump
from tests.support.web import WebClient
from tests.support.web import make_app

NO_TRACE = ("Traceback", 'File "', "line ", "sqlcipher3", "Error:", "werkzeug")


def state(store: Store) -> tuple[dict, bytes]:
    return dump(store), store.keyring_path.read_bytes()


def text(response) -> str:  # noqa: ANN001
    return response.get_data(as_text=True)


def assert_plain_page(response, status: int, *fragments: str) -> str:  # noqa: ANN001
    assert response.status_code == status, text(response)[:500]
    body = text(response)
    for fragment in fragments:
        assert fragment in body, (fragment, body[:2000])
    for trace in ("Traceback", 'File "/'):
        assert trace not in body
    return body


def login_client(app, username: str = ADMIN, password: str = ADMIN_PASSWORD, **kwargs) -> WebClient:  # noqa: ANN001, ANN003
    client = WebClient(app.test_client())
    client.get("/login")
    response = client.post("/login", {"username": username, "password": password}, **kwargs)
    assert response.status_code == 303, text(response)[:500]
    return client


# -- CSRF ---------------------------------------------------------------------------------------------------


def _post_routes(app, client_id: int) -> list[str]:  # noqa: ANN001
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or set()) or rule.endpoint == "static":
            continue
        values = {}
        for arg in rule.arguments:
            converter = rule._converters[arg].__class__.__name__  # noqa: SLF001
            values[arg] = client_id if "Integer" in converter else (ADMIN if arg == "username" else "x")
        with app.test_request_context():
            from flask import url_for

            urls.append(url_for(rule.endpoint, **values))
    return sorted(set(urls))


@pytest.mark.parametrize("mode", ["missing", "wrong"])
def test_csrf_on_every_state_changing_route(
    app, web: WebClient, store: Store, client_company, mode: str
) -> None:  # noqa: ANN001
    urls = _post_routes(app, client_company.id)
    for expected in (
        "/login",
        "/logout",
        "/clients/new",
        f"/clients/{client_company.id}/edit",
        f"/clients/{client_company.id}/archive",
        "/admin/users",
        "/account/password",
        "/recover",
        "/office",
        "/language",
    ):
        assert expected in urls
    data = {
        "username": "nowy",
        "password": "a-long-password-1",
        "role": "admin",
        "nip": "7010003334",
        "name": "Firma CSRF",
        "current_password": ADMIN_PASSWORD,
        "new_password": "another-password-9",
        "new_password2": "another-password-9",
        "lang": "en",
        "ksef_environment": "prod",
        "code": store.recovery_code,
        "confirmed": "y",
    }  # type: ignore[attr-defined]
    before = state(store)
    for url in urls:
        headers = {"X-CSRFToken": "not-the-token"} if mode == "wrong" else {}
        form = dict(data, csrf_token="not-the-token") if mode == "wrong" else data
        response = web.post(url, form, csrf=False, headers=headers)
        body = assert_plain_page(response, 400, "Formularz wygasł")
        assert "nic nie zapisano" in body.lower() or "nie zapisano" in body, body[:1000]
        htmx = web.post(url, form, csrf=False, headers=dict(headers), htmx=True)
        assert htmx.status_code == 400
        assert "<html" not in text(htmx) and "Formularz wygasł" in text(htmx)
    assert state(store) == before
    assert web.get("/clients").status_code == 200  # still logged in, language unchanged
    assert "Klienci" in text(web.get("/clients"))


def test_csrf_token_of_another_session_is_refused(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    other = login_client(app)
    stolen_token = other.token()
    before = state(store)
    response = web.client.post(
        "/clients/new", data={"csrf_token": stolen_token, "nip": "7010003334", "name": "X"}
    )
    assert response.status_code == 400
    assert state(store) == before


def test_valid_csrf_token_is_accepted(web: WebClient, store: Store) -> None:
    response = web.post("/clients/new", {"nip": "7010003334", "name": "Firma z tokenem"})
    assert response.status_code == 303
    assert [r[2] for r in dump(store)["clients"]] == ["Firma z tokenem"]


# -- headers, CSP, no inline script or style ----------------------------------------------------------------


def check_page_hygiene(url: str, response) -> None:  # noqa: ANN001
    csp = response.headers.get("Content-Security-Policy", "")
    directives = [d.strip() for d in csp.split(";")]
    assert "default-src 'self'" in directives, (url, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert not any(d.startswith(("script-src", "style-src")) for d in directives), csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    if response.mimetype != "text/html":
        return
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    for script in soup.find_all("script"):
        assert script.get("src"), f"inline <script> on {url}: {script}"
        assert not script.string or not script.string.strip()
    assert soup.find_all("style") == [], f"<style> on {url}"
    styled = soup.find_all(attrs={"style": True})
    assert styled == [], f"style= attribute on {url}: {styled[:3]}"
    for tag in soup.find_all(True):
        handlers = [
            a
            for a in tag.attrs
            if a.lower().startswith("on") or a.lower().startswith(("hx-on", "data-hx-on"))
        ]
        assert handlers == [], f"inline handler on {url}: {tag.name} {handlers}"
        for attr in ("href", "src", "action", "formaction"):
            value = tag.get(attr)
            assert not (isinstance(value, str) and value.strip().lower().startswith("javascript:")), (
                url,
                tag,
            )


def crawl(client: WebClient, start: list[str], limit: int = 80) -> dict[str, int]:
    """Follow same-site GET links from ``start``; check each page; return url → status."""
    seen: dict[str, int] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        check_page_hygiene(url, response)
        assert response.status_code < 500, (url, text(response)[:500])
        if response.mimetype != "text/html":
            continue
        soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        for link in soup.find_all("a", href=True):
            target = urljoin(url, link["href"])
            parts = urlsplit(target)
            if parts.netloc and parts.netloc != "localhost":
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path.startswith("/static/") or path in seen:
                continue
            queue.append(path)
    return seen


def test_crawl_every_page_for_headers_and_inline_code(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    with store.write() as db:
        for i in range(30):  # more than a page, so pager links are followed too
            clients.create_client(db, clients.validate(nip=_nip(i), name=f"Firma {i:02d}"), actor=ADMIN, at=NOW)
    seen = crawl(
        web,
        [
            "/clients",
            "/clients/new",
            f"/clients/{client_company.id}",
            f"/clients/{client_company.id}/edit",
            "/office",
            "/admin/users",
            "/admin/audit",
            "/account/password",
            "/clients?archived=1",
            "/clients?q=firma",
            "/no-such-page",
            "/clients/99999",
        ],
    )
    assert seen["/clients"] == 200 and seen["/no-such-page"] == 404 and seen["/clients/99999"] == 404
    assert len(seen) >= 15
    assert any("page=2" in url for url in seen), sorted(seen)
    for url in ("/admin/audit", "/office", "/admin/users"):
        assert seen[url] == 200


def _nip(i: int) -> str:
    from tests.support.instances import make_nip

    return make_nip(10_000 + i)


def test_anonymous_pages_hygiene(anon: WebClient) -> None:
    for url in ("/login", "/recover", "/health"):
        response = anon.get(url)
        check_page_hygiene(url, response)
    assert anon.get("/login").status_code == 200


def test_htmx_partials_hygiene(web: WebClient, client_company) -> None:  # noqa: ANN001
    for url in ("/clients?q=prz", "/admin/audit?action=auth."):
        response = web.get(url, htmx=True)
        assert response.status_code == 200
        assert "<html" not in text(response)
        check_page_hygiene(url, response)


# -- cookies ---------------------------------------------------------------------------------------------------


def _set_cookie(response) -> str:  # noqa: ANN001
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    assert cookies, "no Set-Cookie"
    return cookies[-1]


def test_session_cookie_flags_over_http(app) -> None:  # noqa: ANN001
    client = WebClient(app.test_client())
    client.get("/login")
    response = client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    cookie = _set_cookie(response)
    assert cookie.startswith("klucznik=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_flags_with_https(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    monkeypatch.setenv("KLUCZNIK_HTTPS", "1")
    app = make_app(store)
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    token = re.search(r'name="csrf-token" content="([^"]+)"', text(page)).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login",
        base_url="https://localhost",
        data={"csrf_token": token, "username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"Referer": "https://localhost/login"},
    )
    assert response.status_code == 303
    cookie = _set_cookie(response)
    assert cookie.startswith("__Host-klucznik=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain=" not in cookie
    assert client.get("/clients", base_url="https://localhost").status_code == 200


def test_https_refuses_a_cross_site_referer(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    monkeypatch.setenv("KLUCZNIK_HTTPS", "1")
    client = make_app(store).test_client()
    page = client.get("/login", base_url="https://localhost")
    token = re.search(r'name="csrf-token" content="([^"]+)"', text(page)).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login",
        base_url="https://localhost",
        data={"csrf_token": token, "username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"Referer": "https://evil.example/login"},
    )
    assert response.status_code == 400


# -- login throttling --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_throttling_per_user_and_address(app, store: Store) -> None:  # noqa: ANN001
    clock = FakeClock()
    app.extensions["klucznik.throttle"] = LoginThrottle(5, 60, clock=clock)
    attacker = WebClient(app.test_client())
    attacker.get("/login")
    addr_a = {"environ_base": {"REMOTE_ADDR": "10.0.0.1"}}
    for _ in range(5):
        response = attacker.post("/login", {"username": ADMIN, "password": "wrong-password-x"}, **addr_a)
        assert_plain_page(response, 401, "Nieprawidłowy login lub hasło")
    clock.now += 10
    blocked = attacker.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}, **addr_a)
    body = assert_plain_page(blocked, 429)
    match = re.search(r"Spróbuj ponownie za (\d+) s", body)
    assert match, body
    assert int(match.group(1)) == 50
    # Another address, and another user from the same address, are not blocked.
    login_client(app, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    other_user = WebClient(app.test_client())
    other_user.get("/login")
    assert (
        other_user.post("/login", {"username": "ewa", "password": "initial-password"}, **addr_a).status_code
        == 303
    )
    # After the window the right password works again from the first address.
    clock.now += 51
    assert (
        attacker.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}, **addr_a).status_code == 303
    )
    # Written as summaries (the first at once, the rest at the next login), not one write per attempt.
    failed = [r for r in dump(store)["audit_log"] if r[4] == "auth.login_failed"]
    assert sum(json.loads(r[7])["count"] for r in failed) == 5 and {r[3] for r in failed} == {"10.0.0.1"}
    assert len(failed) == 2


def test_throttle_message_in_english(app) -> None:  # noqa: ANN001
    app.extensions["klucznik.throttle"] = LoginThrottle(5, 60, clock=FakeClock())
    client = WebClient(app.test_client())
    client.post("/language", {"lang": "en", "next": "/login"})
    client.get("/login")
    for _ in range(5):
        client.post("/login", {"username": ADMIN, "password": "wrong-password-x"})
    body = text(client.post("/login", {"username": ADMIN, "password": "wrong-password-x"}))
    assert re.search(r"Try again in 60 s", body), body


# -- sessions: idle timeout, logout, password change ---------------------------------------------------------


def _session(app, client: WebClient):  # noqa: ANN001, ANN202
    registry = app.extensions["klucznik.sessions"]
    (live,) = [s for s in registry.sessions.values() if s.username == ADMIN]
    return live


def test_idle_timeout_30_minutes(app, web: WebClient) -> None:  # noqa: ANN001
    assert app.config["KLUCZNIK_IDLE_TIMEOUT"].total_seconds() == 30 * 60
    live = _session(app, web)
    live.last_seen -= 29 * 60  # 29 minutes without a request: still logged in
    assert web.get("/clients").status_code == 200
    live.last_seen -= 30 * 60 + 1
    response = web.get("/clients")
    assert response.status_code == 303 and "/login" in response.headers["Location"]
    page = web.get(response.headers["Location"])
    assert "Wylogowano Cię po 30 minutach bezczynności" in text(page)
    assert app.extensions["klucznik.sessions"].sessions == {}


def test_idle_timeout_setting(store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    monkeypatch.setenv("KLUCZNIK_IDLE_MINUTES", "5")
    app = make_app(store)
    assert app.config["KLUCZNIK_IDLE_TIMEOUT"].total_seconds() == 300
    client = login_client(app)
    _session(app, client).last_seen -= 5 * 60 + 1
    assert client.get("/clients").status_code == 303


def test_logout_ends_the_session_and_old_cookie_is_dead(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    old = web.client.get_cookie("klucznik").value
    response = web.post("/logout")
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    assert web.get("/clients").status_code == 303
    replay = app.test_client()
    replay.set_cookie("klucznik", old)
    again = replay.get("/clients")
    assert again.status_code == 303 and "/login" in again.headers["Location"]
    assert any(r[4] == "auth.logout" for r in dump(store)["audit_log"])


def test_login_gives_a_new_session_id(app) -> None:  # noqa: ANN001
    client = WebClient(app.test_client())
    client.get("/login")
    before = client.client.get_cookie("klucznik")
    client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    after = client.client.get_cookie("klucznik")
    assert after is not None and (before is None or before.value != after.value)


def test_password_change_requires_the_current_one_and_ends_other_sessions(
    app,
    web: WebClient,  # noqa: ANN001
    store: Store,
) -> None:
    other = login_client(app)
    ring_before = store.keyring_path.read_bytes()
    wrong = web.post(
        "/account/password",
        {
            "current_password": "not-my-password",
            "new_password": "new-password-123",
            "new_password2": "new-password-123",
        },
    )
    assert_plain_page(wrong, 422, "Obecne hasło jest nieprawidłowe")
    differ = web.post(
        "/account/password",
        {
            "current_password": ADMIN_PASSWORD,
            "new_password": "new-password-123",
            "new_password2": "new-password-124",
        },
    )
    assert differ.status_code == 422
    assert store.keyring_path.read_bytes() == ring_before
    assert other.get("/clients").status_code == 200
    done = web.post(
        "/account/password",
        {
            "current_password": ADMIN_PASSWORD,
            "new_password": "new-password-123",
            "new_password2": "new-password-123",
        },
    )
    assert done.status_code == 200
    assert web.get("/clients").status_code == 200  # this session stays
    assert other.get("/clients").status_code == 303  # the other one ended
    fresh = WebClient(app.test_client())
    fresh.get("/login")
    assert fresh.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 401
    assert fresh.post("/login", {"username": ADMIN, "password": "new-password-123"}).status_code == 303


def test_forgotten_password_reset_with_recovery_code(app, anon: WebClient, store: Store) -> None:  # noqa: ANN001
    anon.get("/recover")
    ring_before = store.keyring_path.read_bytes()
    wrong = anon.post(
        "/recover",
        {
            "username": ADMIN,
            "code": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG",
            "new_password": "reset-password-1",
            "new_password2": "reset-password-1",
        },
    )
    assert_plain_page(wrong, 422, "nie pasuje do tej instancji")
    assert store.keyring_path.read_bytes() == ring_before
    response = anon.post(
        "/recover",
        {
            "username": ADMIN,
            "code": store.recovery_code,  # type: ignore[attr-defined]
            "new_password": "reset-password-1",
            "new_password2": "reset-password-1",
        },
    )
    assert response.status_code == 303
    assert anon.get("/clients").status_code == 200
    fresh = WebClient(app.test_client())
    fresh.get("/login")
    assert fresh.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 401
    assert fresh.post("/login", {"username": ADMIN, "password": "reset-password-1"}).status_code == 303


# -- the sealed portal ----------------------------------------------------------------------------------------------


def test_sealed_portal_leads_to_login_and_first_login_unseals(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch, client_company
) -> None:  # noqa: ANN001
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    restarted = Store(instance_path, kdf=TEST_KDF)
    app = make_app(restarted)
    client = WebClient(app.test_client())
    for url in (
        "/",
        "/clients",
        f"/clients/{client_company.id}",
        "/clients/new",
        "/office",
        "/admin/users",
        "/admin/audit",
        "/account/password",
        "/setup",
        "/no-such-page",
    ):
        response = client.get(url)
        assert response.status_code == 303, url
        assert "/login" in response.headers["Location"], url
    assert client.get("/health").status_code == 503
    page = client.get("/login")
    assert "Pierwsze logowanie" in text(page) or "zablokowane" in text(page) or "odblokowuje" in text(page)
    assert client.post("/clients/new", {"nip": "7010003334", "name": "X"}).status_code == 303
    assert restarted.is_sealed
    response = client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    assert not restarted.is_sealed
    assert client.get("/health").status_code == 200
    assert "Przykładowa Spółka" in text(client.get("/clients"))


def test_sealed_portal_wrong_password_stays_sealed_and_is_audited_later(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    restarted = Store(instance_path, kdf=TEST_KDF)
    client = WebClient(make_app(restarted).test_client())
    client.get("/login")
    assert client.post("/login", {"username": ADMIN, "password": "wrong-password-1"}).status_code == 401
    assert restarted.is_sealed
    assert client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303
    actions = [r[4] for r in dump(restarted)["audit_log"]]
    assert actions[-2:] == ["auth.login_failed", "auth.login"]


def test_unattended_unseal_at_start(
    store: Store, instance_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "unseal.key"
    store.create_unseal_key_file(key_file)
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    monkeypatch.setenv("KLUCZNIK_UNSEAL_KEY_FILE", str(key_file))
    restarted = Store(instance_path, kdf=TEST_KDF)
    app = make_app(restarted, KLUCZNIK_UNSEAL_KEY_FILE=str(key_file))
    assert not restarted.is_sealed
    client = WebClient(app.test_client())
    assert client.get("/health").status_code == 200
    assert client.get("/clients").status_code == 303  # unsealed, but a login is still needed


# -- a database that is not ours ------------------------------------------------------------------------------------


def _damaged_app(instance_path: Path, monkeypatch: pytest.MonkeyPatch) -> WebClient:
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    return WebClient(make_app(Store(instance_path, kdf=TEST_KDF)).test_client())


def _replace_data(store: Store, source: Path | None) -> None:
    store.seal()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(store.snapshot_path)
    if source is None:
        store.db_path.write_bytes(b"this is not a database at all " * 500)
        store.snapshot_path.mkdir()
        (store.snapshot_path / "klucznik-000000000099.db").write_bytes(b"garbage" * 900)
    else:
        shutil.copyfile(source / "klucznik.db", store.db_path)
        shutil.copytree(source / "snapshots", store.snapshot_path)


@pytest.mark.parametrize("kind", ["garbage", "another instance"])
def test_database_not_ours_gives_a_clear_page(
    store: Store, instance_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    source = None
    if kind == "another instance":
        other = Store(tmp_path / "other", kdf=TEST_KDF)
        other.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
        other.seal()
        source = other.path
    _replace_data(store, source)
    files_before = sorted(p.name for p in instance_path.rglob("*"))
    client = _damaged_app(instance_path, monkeypatch)
    client.get("/login")
    response = client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    body = assert_plain_page(response, 503, "Nie można otworzyć danych", "kopii zapasowej")
    assert "Niczego nie zmieniono ani nie usunięto" in body
    assert sorted(p.name for p in instance_path.rglob("*")) == files_before
    htmx = client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}, htmx=True)
    assert htmx.status_code == 503 and "Traceback" not in text(htmx)


def test_missing_keyring_every_page_explains(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.seal()
    store.keyring_path.unlink()
    client = _damaged_app(instance_path, monkeypatch)
    for url in ("/", "/login", "/clients", "/setup", "/admin/users"):
        assert_plain_page(client.get(url), 503, "Nie można otworzyć danych", "keyring.json")
    assert client.get("/health").get_json() == {"state": "damaged"}
    assert not store.keyring_path.exists()


# -- errors ----------------------------------------------------------------------------------------------------------


def test_unexpected_exception_gives_a_generic_500_with_an_error_number(
    app, caplog: pytest.LogCaptureFixture
) -> None:  # noqa: ANN001
    def explode() -> str:
        raise RuntimeError("secret internal detail 5f3a")

    app.add_url_rule("/test-explode", "test_explode", explode)
    client = login_client(app)
    response = client.get("/test-explode")
    body = assert_plain_page(response, 500, "Coś poszło nie tak", "Numer błędu")
    assert "secret internal detail" not in body and "RuntimeError" not in body
    error_id = re.search(r"<code>([0-9a-f]{8})</code>", body).group(1)  # type: ignore[union-attr]
    assert any(error_id in record.getMessage() for record in caplog.records)
    check_page_hygiene("/test-explode", response)
    partial = client.get("/test-explode", htmx=True)
    assert partial.status_code == 500 and "<html" not in text(partial) and "Numer błędu" in text(partial)


def test_oversized_upload_gives_413_and_stores_nothing(web: WebClient, store: Store) -> None:
    before = state(store)
    # Encoded in memory (the test client would otherwise spool 3 MB to a temporary file it never closes).
    boundary, body = encode_multipart(
        {
            "nip": "7010003334",
            "name": "Za duży",
            "attachment": FileStorage(BytesIO(b"\x00" * (3 * 1024 * 1024)), "big.key"),
        },
    )
    for htmx in (False, True):
        headers = {"X-CSRFToken": web.token(), **({"HX-Request": "true"} if htmx else {})}
        response = web.client.post(
            "/clients/new",
            data=body,
            headers=headers,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        if htmx:
            assert response.status_code == 413 and "<html" not in text(response)
            assert "Plik jest za duży" in text(response)
        else:
            assert "2 MB" in assert_plain_page(response, 413, "Plik jest za duży")
    assert state(store) == before


def test_malformed_nip_in_the_form_keeps_the_data(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    before = state(store)
    response = web.post(f"/clients/{client_company.id}/edit", {"nip": "526-104-08-29", "name": "Nowa nazwa"})
    assert_plain_page(response, 422, "cyfrę kontrolną")
    assert state(store) == before


def test_not_found_pages(web: WebClient) -> None:
    assert_plain_page(web.get("/clients/424242"), 404, "Nie ma takiego klienta")
    assert web.get("/no/such/page").status_code == 404
    assert web.post("/clients").status_code == 405


def test_recovery_unseals_a_restarted_portal_and_ends_the_users_sessions(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restore onto a new machine, the recovery code alone opens the portal."""
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(instance_path))
    first_app = make_app(store)
    old_session = login_client(first_app)
    assert old_session.get("/clients").status_code == 200
    restarted = Store(instance_path, kdf=TEST_KDF)
    app = make_app(restarted)
    client = WebClient(app.test_client())
    client.get("/recover")
    response = client.post(
        "/recover",
        {
            "username": ADMIN,
            "code": store.recovery_code,  # type: ignore[attr-defined]
            "new_password": "after-restore-pw1",
            "new_password2": "after-restore-pw1",
        },
    )
    assert response.status_code == 303
    assert not restarted.is_sealed
    assert client.get("/clients").status_code == 200
    other = login_client(app, password="after-restore-pw1")
    client.get("/recover")
    # A second reset by the same user ends that user's other sessions.
    client.post(
        "/recover",
        {
            "username": ADMIN,
            "code": store.recovery_code,  # type: ignore[attr-defined]
            "new_password": "after-restore-pw2",
            "new_password2": "after-restore-pw2",
        },
    )
    assert other.get("/clients").status_code == 303
    assert client.get("/clients").status_code == 200
    actions = [r[4] for r in dump(restarted)["audit_log"]]
    assert actions.count("users.password_reset") == 2


def test_recovery_throttled_after_five_wrong_codes(app, anon: WebClient, store: Store) -> None:  # noqa: ANN001
    app.extensions["klucznik.throttle"] = LoginThrottle(5, 60, clock=FakeClock())
    anon.get("/recover")
    form = {
        "username": ADMIN,
        "code": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG",
        "new_password": "reset-password-1",
        "new_password2": "reset-password-1",
    }
    for _ in range(5):
        assert anon.post("/recover", form).status_code == 422
    blocked = anon.post("/recover", dict(form, code=store.recovery_code))  # type: ignore[attr-defined]
    assert blocked.status_code == 422 and "Spróbuj ponownie za 60 s" in text(blocked)
    fresh = WebClient(app.test_client())
    fresh.get("/login")
    assert fresh.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303


def test_session_secret_is_per_process_and_never_stored(
    app,
    web: WebClient,
    store: Store,  # noqa: ANN001
    instance_path: Path,
) -> None:
    """A restart (or a copy of instance/) cannot reuse or forge a session cookie."""
    cookie = web.client.get_cookie("klucznik").value
    secret = app.config["SECRET_KEY"]
    assert isinstance(secret, bytes) and len(secret) >= 32
    for path in instance_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data and secret.hex().encode() not in data, path
    unsealed = Store(instance_path, kdf=TEST_KDF)
    unsealed.login(ADMIN, ADMIN_PASSWORD)  # unsealed, so only the cookie decides
    second = make_app(unsealed)
    assert second.config["SECRET_KEY"] != secret
    replay = second.test_client()
    replay.set_cookie("klucznik", cookie)
    response = replay.get("/clients")
    assert response.status_code == 303 and "/login" in response.headers["Location"]


def test_damaged_live_database_is_restored_at_login_and_audited(
    store: Store, instance_path: Path, monkeypatch: pytest.MonkeyPatch, client_company
) -> None:  # noqa: ANN001
    store.seal()
    with open(store.db_path, "r+b") as fh:
        fh.truncate(store.db_path.stat().st_size // 2)
    client = _damaged_app(instance_path, monkeypatch)
    client.get("/login")
    assert client.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303
    assert "Przykładowa Spółka" in text(client.get("/clients"))
    login = text(client.get("/admin/audit?action=auth.login"))
    assert "restored_from" in login and "snapshot-" in login
    assert len(list(instance_path.glob("damaged-*/klucznik.db"))) == 1
