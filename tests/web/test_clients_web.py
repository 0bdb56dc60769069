"""Client companies in the web: add, edit, archive, live search (htmx partial vs page), pages, 1,000 clients."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import NOW
from tests.support.instances import dump
from tests.support.instances import nips
from tests.support.web import WebClient


def text(response) -> str:  # noqa: ANN001
    return response.get_data(as_text=True)


def rows(response) -> list[list[str]]:  # noqa: ANN001
    soup = BeautifulSoup(text(response), "html.parser")
    return [
        [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        for tr in soup.select("table.list tbody tr")
    ]


def bulk(store: Store, count: int, *, prefix: str = "Firma", start: int = 0) -> list[str]:
    values = nips(count, start=start)
    with store.write() as db:
        for i, nip in enumerate(values):
            clients.create_client(db, clients.validate(nip=nip, name=f"{prefix} {i:04d}"), actor=ADMIN, at=NOW)
    return values


def test_add_client_through_the_form(web: WebClient, store: Store) -> None:
    assert web.get("/clients/new").status_code == 200
    response = web.post(
        "/clients/new",
        {
            "nip": "PL 526-104-08-28",
            "name": "  Żabka   Sp. z o.o. ",
            "email": "biuro@zabka.pl",
            "notes": "Klient od 2020",
        },
    )
    assert response.status_code == 303
    match = re.search(r"/clients/(\d+)$", response.headers["Location"])
    assert match
    page = web.get(response.headers["Location"])
    body = text(page)
    assert "Żabka Sp. z o.o." in body and "526-104-08-28" in body and "biuro@zabka.pl" in body
    stored = dump(store)["clients"]
    assert [(r[1], r[2], r[3]) for r in stored] == [("5261040828", "Żabka Sp. z o.o.", "biuro@zabka.pl")]


def test_add_with_errors_keeps_values_and_stores_nothing(web: WebClient, store: Store) -> None:
    before = dump(store)
    response = web.post(
        "/clients/new", {"nip": "123-456", "name": "", "email": "nie-mail", "notes": "notatka"}
    )
    assert response.status_code == 422
    body = text(response)
    assert "NIP ma 10 cyfr" in body and "Wpisz nazwę firmy" in body and "e-mail" in body
    soup = BeautifulSoup(body, "html.parser")
    assert soup.find("input", {"name": "nip"})["value"] == "123-456"
    assert soup.find("input", {"name": "email"})["value"] == "nie-mail"
    assert soup.find("textarea", {"name": "notes"}).get_text() == "notatka"
    assert soup.find(attrs={"aria-invalid": "true"}) is not None
    assert dump(store) == before


@pytest.mark.parametrize(
    ("nip", "message"),
    [("0000000000", "cyfrę kontrolną"), ("5261040829", "cyfrę kontrolną"), ("52610408", "10 cyfr")],
)
def test_bad_nip_in_the_form(web: WebClient, store: Store, nip: str, message: str) -> None:
    before = dump(store)
    response = web.post("/clients/new", {"nip": nip, "name": "Firma"})
    assert response.status_code == 422 and message in text(response)
    assert dump(store) == before


def test_duplicate_nip_in_the_form(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    before = dump(store)
    response = web.post("/clients/new", {"nip": "526-104-08-28", "name": "Druga firma"})
    assert response.status_code == 422 and "już istnieje" in text(response)
    assert dump(store) == before


def test_english_messages(web: WebClient) -> None:
    web.post("/language", {"lang": "en", "next": "/clients/new"})
    response = web.post("/clients/new", {"nip": "5261040829", "name": ""})
    assert response.status_code == 422
    assert "check digit is wrong" in text(response) and "Enter the company name" in text(response)


def test_edit_client(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    page = web.get(f"/clients/{client_company.id}/edit")
    soup = BeautifulSoup(text(page), "html.parser")
    assert soup.find("input", {"name": "nip"})["value"] == "526-104-08-28"
    response = web.post(
        f"/clients/{client_company.id}/edit",
        {"nip": "5261040828", "name": "Nowa Nazwa Łódź", "email": "", "notes": "zmiana"},
    )
    assert response.status_code == 303
    db = store.connect()
    try:
        changed = clients.get_client(db, client_company.id)
        audit = db.execute("SELECT action, details FROM audit_log ORDER BY id DESC").fetchone()
    finally:
        db.close()
    assert (changed.name, changed.email, changed.notes) == ("Nowa Nazwa Łódź", "", "zmiana")
    assert audit[0] == "clients.update" and "name" in audit[1]


def test_edit_missing_client_is_404(web: WebClient) -> None:
    assert web.get("/clients/999/edit").status_code == 404
    assert web.post("/clients/999/edit", {"nip": "5261040828", "name": "X"}).status_code == 404


def test_archive_and_restore(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    response = web.post(f"/clients/{client_company.id}/archive")
    assert response.status_code == 303
    assert "Przykładowa" not in text(web.get("/clients"))
    archive = web.get("/clients?archived=1")
    assert [r[0] for r in rows(archive)] == ["Przykładowa Spółka z o.o."]
    view = BeautifulSoup(text(web.get(f"/clients/{client_company.id}")), "html.parser")
    assert view.select_one("input[name=restore][value='1']") is not None
    assert web.post(f"/clients/{client_company.id}/archive", {"restore": "1"}).status_code == 303
    assert "Przykładowa" in text(web.get("/clients"))
    actions = [r[4] for r in dump(store)["audit_log"] if r[6] == str(client_company.id)]
    assert actions == ["clients.create", "clients.archive", "clients.restore"]


def test_search_full_page_and_htmx_partial(web: WebClient, store: Store) -> None:
    with store.write() as db:
        for name, nip in zip(["Żółta Łódka", "Zielony Ogród", "Łąka Sp. j."], nips(3), strict=True):
            clients.create_client(db, clients.validate(nip=nip, name=name), actor=ADMIN, at=NOW)
    full = web.get("/clients?q=ŁÓD")
    partial = web.get("/clients?q=ŁÓD", htmx=True)
    for response in (full, partial):
        assert response.status_code == 200
        assert "HX-Request" in response.headers.get("Vary", "")
        assert [r[0] for r in rows(response)] == ["Żółta Łódka"]
    assert "<html" in text(full) and 'id="results"' in text(full)
    assert "<html" not in text(partial) and "<header" not in text(partial)
    # A NIP typed with dashes finds the client.
    target = nips(3)[2]
    formatted = f"{target[:3]}-{target[3:6]}-{target[6:8]}-{target[8:]}"
    assert [r[0] for r in rows(web.get(f"/clients?q={formatted}", htmx=True))] == ["Łąka Sp. j."]
    empty = web.get("/clients?q=nieistniejąca", htmx=True)
    assert rows(empty) == [] and "nieistniejąca" in text(empty)


def test_search_query_is_escaped(web: WebClient, client_company) -> None:  # noqa: ANN001
    response = web.get("/clients?q=<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in text(response)
    assert "&lt;script&gt;" in text(response)


def test_pagination_links_and_pages(web: WebClient, store: Store) -> None:
    bulk(store, 60)
    first = web.get("/clients")
    assert len(rows(first)) == 25
    assert "Strona 1 z 3" in text(first)
    soup = BeautifulSoup(text(first), "html.parser")
    nxt = soup.select_one("nav.pager a[href*='page=2']")
    assert nxt is not None and nxt.get("hx-get") and nxt.get("hx-target") == "#results"
    last = web.get("/clients?page=3", htmx=True)
    assert [r[0] for r in rows(last)] == [f"Firma {i:04d}" for i in range(50, 60)]
    assert "Strona 3 z 3" in text(last)
    assert rows(web.get("/clients?page=abc")) == rows(first)
    assert "Strona 3 z 3" in text(web.get("/clients?page=999"))


def test_one_thousand_clients_list_renders(web: WebClient, store: Store) -> None:
    values = bulk(store, 1000)
    response = web.get("/clients")
    assert response.status_code == 200
    assert len(rows(response)) == 25
    assert "1000 klientów" in text(response)
    assert "Strona 1 z 40" in text(response)
    assert [r[0] for r in rows(web.get("/clients?page=40", htmx=True))][-1] == "Firma 0999"
    assert [r[0] for r in rows(web.get(f"/clients?q={values[500]}", htmx=True))] == ["Firma 0500"]


def test_client_view_shows_formatted_nip(web: WebClient, client_company) -> None:  # noqa: ANN001
    body = text(web.get(f"/clients/{client_company.id}"))
    assert "526-104-08-28" in body and "Przykładowa Spółka z o.o." in body
