"""Redirect targets, ids and page numbers in addresses, and the Host header (issue 9, items 1–4).

``next`` after login, after the htmx login (``HX-Redirect``) and after the language switch must stay on this
site in every spelling a browser would read differently (tabs, newlines, backslashes, encoded slashes);
CR/LF must not give a 500; ids beyond SQLite's 64-bit integers and huge page numbers answer 404/400; a
routing redirect never carries the ``Host`` a visitor sent.
"""

from __future__ import annotations

import pytest

from tests.support.badinput import TRACE_MARKERS
from tests.support.badinput import body
from tests.support.badinput import refused
from tests.support.badinput import same_site
from tests.support.badinput import stored
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.web import WebClient

#: Where a login without a (usable) next goes: the start page.
LANDING = "/"

HOSTILE_NEXT = [
    "/%09/evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r\n/evil.example/",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:%20x=1",
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "/%5Cevil.example/",
    "/%2F/evil.example/",
    "/%252F%252Fevil.example/",
    "%2F%2Fevil.example/",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    " /clients",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "/login?next=//evil.example",
    "/" + "a" * 5000,
]


def _login_page(client: WebClient, next_value: str) -> None:
    response = client.client.get("/login", query_string={"next": next_value})
    client._refresh_token(body(response))  # noqa: SLF001


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_next_stays_on_the_site(anon: WebClient, target: str) -> None:
    _login_page(anon, target)
    response = anon.client.post(
        "/login", query_string={"next": target}, data={"username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"X-CSRFToken": anon.token()},
    )
    assert response.status_code == 303, body(response)[:500]
    assert response.headers["Location"] == LANDING


@pytest.mark.parametrize("target", HOSTILE_NEXT[:12])
def test_htmx_login_hx_redirect_stays_on_the_site(anon: WebClient, target: str) -> None:
    _login_page(anon, target)
    response = anon.client.post(
        "/login", query_string={"next": target}, data={"username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"X-CSRFToken": anon.token(), "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == LANDING


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_language_switch_next_stays_on_the_site(anon: WebClient, store, target: str) -> None:  # noqa: ANN001
    before = stored(store)
    response = anon.post("/language", {"lang": "en", "next": target})
    assert response.status_code == 303, body(response)[:500]
    location = response.headers["Location"]
    # The login page's own address is a same-site path (the login then refuses its hostile next).
    assert location == "/" or (same_site(location) and location.startswith("/login?")), location
    assert stored(store) == before


@pytest.mark.parametrize("target", ["/clients?q=kowalski", "/clients/1", "/admin/audit?page=2", "/office"])
def test_a_same_site_next_is_kept(anon: WebClient, target: str) -> None:
    response = anon.post("/language", {"lang": "pl", "next": target})
    assert response.headers["Location"] == target
    _login_page(anon, target)
    login = anon.client.post(
        "/login", query_string={"next": target}, data={"username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"X-CSRFToken": anon.token()},
    )
    assert login.headers["Location"] == target


BIG = [str(2**63), str(2**64), "9" * 30, "1" + "0" * 25]


@pytest.mark.parametrize("number", BIG)
@pytest.mark.parametrize(
    "template",
    [
        "/clients/{n}",
        "/clients/{n}/edit",
        "/clients/{n}/wizard",
        "/clients/{n}/certificates/upload",
        "/clients/1/wizard/attempts/{n}",
        "/clients/1/wizard/attempts/{n}/progress",
    ],
)
def test_ids_beyond_64_bits_are_404(web: WebClient, client_company, template: str, number: str) -> None:  # noqa: ANN001
    refused(web.get(template.format(n=number)), 404, "Nie ma takiej strony")


@pytest.mark.parametrize("number", [str(2**63), "1" + "0" * 25])
@pytest.mark.parametrize("template", ["/clients/{n}/archive", "/clients/{n}/edit", "/clients/1/wizard/attempts/{n}/submit"])
def test_posts_to_ids_beyond_64_bits_are_404_and_change_nothing(web: WebClient, store, template: str, number: str) -> None:  # noqa: ANN001
    before = stored(store)
    refused(web.post(template.format(n=number), {"nip": "5261040828", "name": "X"}), 404, "Nie ma takiej strony")
    assert stored(store) == before


@pytest.mark.parametrize("page", ["1" + "0" * 25, str(2**63), "10000001"])
@pytest.mark.parametrize("url", ["/admin/audit", "/clients", "/clients?archived=1"])
def test_huge_page_numbers_are_400(web: WebClient, url: str, page: str) -> None:
    sep = "&" if "?" in url else "?"
    refused(web.get(f"{url}{sep}page={page}"), 400, "Nieprawidłowe żądanie")
    refused(web.get(f"{url}{sep}page={page}", htmx=True), 400, "Nieprawidłowe żądanie")


@pytest.mark.parametrize("page", ["abc", "-5", "0", "²", "٣", "1e3", ""])
def test_odd_page_numbers_show_the_first_page(web: WebClient, page: str) -> None:
    for url in ("/admin/audit", "/clients"):
        response = web.get(f"{url}?page={page}")
        assert response.status_code == 200
        assert not any(marker in body(response) for marker in TRACE_MARKERS)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1:8000"])
@pytest.mark.parametrize("path", ["/admin//users", "/admin///users", "/clients//1", "/admin//audit?page=2"])
def test_double_slash_redirects_never_carry_the_host(web: WebClient, host: str, path: str) -> None:
    response = _as_host(web, host, path)
    assert response.status_code in (301, 308, 404), body(response)[:300]
    location = response.headers.get("Location", "")
    assert "evil" not in location and host not in location
    if response.status_code != 404:
        assert same_site(location), location
        assert "//" not in location


def _as_host(web: WebClient, host: str, path: str):  # noqa: ANN202
    """``path`` as the logged-in administrator, with the ``Host`` header ``host`` (the session cookie follows)."""
    cookie = web.client.get_cookie("klucznik")
    assert cookie is not None
    web.client.set_cookie("klucznik", cookie.value, domain=host.split(":")[0])
    return web.client.get(path, base_url=f"http://{host}")


def test_double_slash_redirect_keeps_the_query(web: WebClient) -> None:
    response = _as_host(web, "evil.example", "/admin//audit?page=2")
    assert response.headers["Location"] == "/admin/audit?page=2"
