"""Requests that are wrong as HTTP (SECURITY.md §3.1, A1–A3, A13): missing or foreign CSRF tokens, cross-site
posts, state changes by GET, a Host not trusted, broken multipart bodies, oversized requests, junk headers and
cookies. Each is refused (or ignored) with a plain page; nothing stored changes.
"""

from __future__ import annotations

import pytest

from klucznik.instance.store import Store
from tests.support.badinput import refused
from tests.support.badinput import same_site
from tests.support.badinput import stored
from tests.support.web import WebClient
from tests.support.web import make_app

STATE_CHANGING = [
    ("/clients/new", {"nip": "5261040828", "name": "Firma"}),
    ("/office", {"name": "Biuro", "nip": "5252955037", "ksef_environment": "test"}),
    ("/admin/users", {"username": "intruz", "role": "admin", "password": "long-enough-password"}),
    ("/clients/{id}/archive", {}),
    ("/clients/{id}/edit", {"nip": "5261040828", "name": "Przejęta"}),
    ("/clients/{id}/wizard/grant/new", {}),
    ("/account/password", {"current_password": "x", "new_password": "y" * 12, "new_password2": "y" * 12}),
    ("/logout", {}),
]


@pytest.mark.parametrize(("path", "data"), STATE_CHANGING)
@pytest.mark.parametrize("token", ["missing", "garbage", "another session's"])
def test_a1_posts_without_this_sessions_csrf_token_change_nothing(app, web: WebClient, store: Store, client_company,  # noqa: ANN001
                                                                 path: str, data: dict, token: str) -> None:
    other = WebClient(app.test_client())
    other.login()
    headers = {} if token == "missing" else {"X-CSRFToken": "abc.def.ghi" if token == "garbage" else other.token()}
    before = stored(store)
    response = web.post(path.format(id=client_company.id), data, csrf=False, headers=headers)
    refused(response, 400, "Formularz wygasł", "niczego nie zapisano")
    assert stored(store) == before


@pytest.mark.parametrize(("path", "data"), STATE_CHANGING[:4])
@pytest.mark.parametrize("referer", [None, "https://evil.example/", "http://portal.example/"])
def test_a2_cross_site_posts_over_https_are_refused(store: Store, client_company, path: str, data: dict,  # noqa: ANN001
                                                   referer: str | None) -> None:
    app = make_app(store, KLUCZNIK_HTTPS=True, SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME="klucznik")
    client = WebClient(app.test_client())
    client.client.get("/login", base_url="https://portal.example")
    client.csrf = None
    page = client.client.get("/login", base_url="https://portal.example")
    client._refresh_token(page.get_data(as_text=True))  # noqa: SLF001
    before = stored(store)
    headers = {"X-CSRFToken": client.token(), **({"Referer": referer} if referer else {})}
    response = client.client.post(path.format(id=client_company.id), data=data, headers=headers,
                                  base_url="https://portal.example")
    assert response.status_code in (400, 303), response.status_code
    if response.status_code == 400:
        refused(response, 400, "Formularz wygasł")
    else:  # refused earlier by the gate (no session): a redirect to the login page
        assert same_site(response.headers["Location"])
    assert stored(store) == before


@pytest.mark.parametrize("path", ["/clients/{id}/archive", "/logout", "/admin/users/admin/remove",
                                  "/clients/{id}/wizard/grant/new", "/language"])
def test_a3_state_changes_by_get_are_405(web: WebClient, store: Store, client_company, path: str) -> None:  # noqa: ANN001
    before = stored(store)
    refused(web.get(path.format(id=client_company.id)), 405, "Niedozwolone")
    assert stored(store) == before


@pytest.mark.parametrize("host", ["evil.example", "portal.example.evil.example", "portal.example@evil.example",
                                  "[::1]:99999", "a" * 300])
def test_a13_a_host_not_trusted_is_400(store: Store, host: str) -> None:
    app = make_app(store, TRUSTED_HOSTS=["portal.example", "localhost"])
    client = app.test_client()
    response = client.get("/login", headers={"Host": host})
    refused(response, 400, "Nieprawidłowe żądanie")
    assert client.get("/login", headers={"Host": "portal.example"}).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=xyz",
     "application/x-www-form-urlencoded; charset=utf-99", "text/xml", "application/json"],
)
def test_broken_bodies_change_nothing(web: WebClient, store: Store, client_company, content_type: str) -> None:  # noqa: ANN001
    before = stored(store)
    response = web.client.post(f"/clients/{client_company.id}/edit", data=b"--xyz\r\nbroken\r\n\r\n\x00\xff",
                               content_type=content_type, headers={"X-CSRFToken": web.token()})
    refused(response, (400, 413, 422))
    assert stored(store) == before


def test_too_many_form_parts_are_refused(web: WebClient, store: Store) -> None:
    before = stored(store)
    data = {f"field{i}": "x" for i in range(200)}  # multipart: at most MAX_FORM_PARTS (50) parts
    response = web.post("/clients/new", data, files={"attachment": (b"x", "x.txt")})
    refused(response, 413, "Plik jest za duży")
    assert stored(store) == before


@pytest.mark.parametrize("size", [2 * 1024 * 1024 + 1, 5 * 1024 * 1024])
def test_an_oversized_body_is_413_in_polish(web: WebClient, store: Store, client_company, size: int) -> None:  # noqa: ANN001
    before = stored(store)
    payload = b"a=" + b"x" * size
    response = web.client.post("/clients/new", data=payload, content_type="application/x-www-form-urlencoded",
                               headers={"X-CSRFToken": web.token()})
    refused(response, 413, "Plik jest za duży")
    assert stored(store) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"HX-Request": "maybe"},
        {"HX-Request": "true", "HX-Current-URL": "https://evil.example/"},
        {"HX-Request": "true", "HX-History-Restore-Request": "true"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        {"Accept-Language": "xx-YY;q=abc, *;q=0"},
        {"Accept": "application/json"},
        {"Cookie": "klucznik=" + "A" * 3000},
        {"Cookie": "klucznik=not.a.valid.session"},
        {"User-Agent": "\x00\x01<script>"},
        {"Content-Type": "text/html; charset=\x00"},
    ],
)
@pytest.mark.parametrize("path", ["/clients", "/admin/audit", "/login"])
def test_junk_headers_and_cookies_never_break_a_page(web: WebClient, store: Store, headers: dict, path: str) -> None:
    before = stored(store)
    response = web.client.get(path, headers=headers)
    refused(response, (200, 303, 400))
    if response.status_code == 303:
        assert same_site(response.headers["Location"])
    assert "evil.example" not in response.headers.get("Location", "")
    assert stored(store) == before
