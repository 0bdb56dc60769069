"""The status page through Flask's test client: the start page, the table with htmx filters, the banner on
every page, a client's SVG timeline and its KSeF errors explained in Polish."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from klucznik.records import ksef_log
from klucznik.status.results import CheckOutcome
from klucznik.status.results import record_outcomes
from klucznik.text import Text
from tests.support.defaults import NOW
from tests.support.status import add_client
from tests.support.status import add_credential

D = timedelta(days=1)


@pytest.fixture
def pinned(app):
    app.config["KLUCZNIK_CLOCK"] = lambda: NOW
    return app


@pytest.fixture
def office(store, pinned):
    with store.write() as db:
        alfa = add_client(db, "5261040828", "Alfa sp. z o.o.", method="portal_certs", at=NOW)
        add_credential(db, alfa, slot="online", serial="00AA01", not_before=NOW - 700 * D, not_after=NOW + 5 * D)
        add_credential(db, alfa, slot="offline", serial="00AA02", not_before=NOW - 300 * D, not_after=NOW + 400 * D)
        add_credential(db, alfa, slot="online", serial="00AA00", not_before=NOW - 900 * D,
                       not_after=NOW - 200 * D, status="superseded")
        beta = add_client(db, "7740001454", "Beta S.A.", method="user_certs", at=NOW)
        add_credential(db, beta, slot="online", serial="00BB01", not_before=NOW - 10 * D, not_after=NOW + 700 * D)
        add_client(db, "1132853869", "Delta", at=NOW)
        record_outcomes(db, [CheckOutcome(client_id=beta, at=NOW - D, ok=False, method="user_certs",
                                          http_status=400, ksef_code=25008, ksef_text="Certyfikat nie istnieje.",
                                          error_code="ksef_25008",
                                          message=Text("KSeF nie zna certyfikatu.", "KSeF does not know it."))])
        ksef_log.record_operation(db, client_id=beta, at=NOW - 2 * D, operation="auth.status", ok=False,
                                  ksef_code=415, description="Brak uprawnień")
    return {"alfa": alfa, "beta": beta}


def test_start_page_is_the_clients_list_until_there_are_clients(web) -> None:
    response = web.get("/")
    assert response.status_code == 303 and response.headers["Location"].endswith("/clients")


def test_start_page_is_the_status_table_once_clients_exist(web, office) -> None:
    page = web.get("/").get_data(as_text=True)
    assert "<h1>Status KSeF</h1>" in page
    assert page.index("Alfa sp. z o.o.") < page.index("Beta S.A.") < page.index("Delta")
    assert "00AA01" in page and "00AA00" not in page  # superseded certificates are history, not in the table
    assert "zostało 5 dni" in page and "band-urgent" in page
    assert 'hx-get="/status/availability"' in page
    assert "KSeF nie zna certyfikatu." in page  # Beta's failed last check


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("show=expiring", ["Alfa"], ["Beta", "Delta"]),
        ("show=errors", ["Beta"], ["Alfa", "Delta"]),
        ("show=unauthorized", ["Delta"], ["Alfa", "Beta"]),
        ("method=user_certs", ["Beta"], ["Alfa", "Delta"]),
        ("q=774", ["Beta"], ["Alfa", "Delta"]),
    ],
)
def test_filters_answer_htmx_with_only_the_table(web, office, query, shown, hidden) -> None:
    response = web.get(f"/status?{query}", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and "Vary" in response.headers
    assert all(name in html for name in shown) and not any(name in html for name in hidden)


def test_sorting_by_expiry_and_paging_keep_the_filters(web, office) -> None:
    html = web.get("/status?sort=expiry", htmx=True).get_data(as_text=True)
    assert html.index("Alfa") < html.index("Beta") < html.index("Delta")


def test_banner_on_every_page_links_to_the_filtered_table(web, office) -> None:
    page = web.get("/clients").get_data(as_text=True)
    banner = re.search(r'<p class="status-banner".*?</p>', page, re.S).group(0)
    assert "1 klient ma certyfikat wygasający w ciągu 30 dni." in banner
    assert "1 klient nie przeszedł ostatniego sprawdzenia w KSeF." in banner
    assert "/status?show=expiring" in banner and "/status?show=errors" in banner


def test_no_banner_when_nothing_expires_or_failed(web, store, pinned) -> None:
    with store.write() as db:
        fine = add_client(db, "7740001454", "Beta S.A.", method="user_certs", at=NOW)
        add_credential(db, fine, slot="online", serial="00BB01", not_before=NOW, not_after=NOW + 700 * D)
    assert "status-banner" not in web.get("/clients").get_data(as_text=True)


def test_client_page_draws_the_timeline_and_explains_ksef_errors(web, office) -> None:
    page = web.get(f"/status/clients/{office['alfa']}").get_data(as_text=True)
    svg = re.search(r"<svg class=\"timeline\".*?</svg>", page, re.S).group(0)
    assert svg.count('class="bar bar-active') == 2 and svg.count('class="bar bar-superseded') == 1
    assert svg.count('class="window"') == 2 and 'class="today"' in svg
    assert "<style" not in svg and "style=" not in svg  # the CSP allows no inline styles
    errors = web.get(f"/status/clients/{office['beta']}").get_data(as_text=True)
    section = errors[errors.index('id="errors"'):]
    assert "25008" in section and "Certyfikat nie istnieje." in section
    assert "KSeF nie zna certyfikatu o tym numerze seryjnym." in section  # the one table's explanation
    assert "415" in section and "Podpisujący nie ma w KSeF uprawnień do tej firmy" in section


def test_unknown_client_is_a_404_page(web, office) -> None:
    assert web.get("/status/clients/999").status_code == 404


def test_the_status_page_needs_a_login(anon, office) -> None:
    assert anon.get("/status").status_code in (302, 303)
