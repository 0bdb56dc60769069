"""Issue 9, flows: the numbered steps, "Dodaj autoryzację" from a NIP, and the other flow fixes in the web."""

from __future__ import annotations

from bs4 import BeautifulSoup

from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW
from tests.support.instances import dump
from tests.support.web import WebClient

NEW_NIP = "5252955037"


def soup(response) -> BeautifulSoup:  # noqa: ANN001
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def steps(response) -> list[tuple[str, str]]:  # noqa: ANN001
    """(state, text) of every step of the step bar."""
    return [(li["class"][0], li.get_text(" ", strip=True)) for li in soup(response).select("#step-bar li")]


# -- item 15: numbered steps ------------------------------------------------------------------------------


def test_wizard_start_is_step_1(web: WebClient, client_company) -> None:  # noqa: ANN001
    response = web.get(f"/clients/{client_company.id}/wizard")
    assert response.status_code == 200
    bar = steps(response)
    assert bar[0] == ("now", "Krok 1: Wybierz sposób autoryzacji")
    assert [state for state, _ in bar[1:]] == ["later", "later"]
    assert soup(response).select_one("#step-bar li[aria-current=step]")["data-step"] == "1"


def test_method_page_without_a_file_is_step_2(web: WebClient, client_company) -> None:  # noqa: ANN001
    response = web.get(f"/clients/{client_company.id}/wizard/grant")
    bar = steps(response)
    assert [state for state, _ in bar] == ["done", "now", "later", "later"]
    assert bar[1][1] == "Krok 2: Pobierz plik XML"
    assert bar[3][1] == "Krok 4: Wgraj podpisany plik i wyślij go do KSeF"
    headings = [h.get_text(" ", strip=True) for h in soup(response).select("section.step h2")]
    assert headings == ["Krok 2: Pobierz plik XML", "Krok 3: Podpisz plik",
                        "Krok 4: Wgraj podpisany plik i wyślij go do KSeF"]


def test_upload_page_is_step_2_of_method_3(web: WebClient, client_company) -> None:  # noqa: ANN001
    response = web.get(f"/clients/{client_company.id}/certificates/upload")
    bar = steps(response)
    assert bar == [("done", "Krok 1: Wybierz sposób autoryzacji"),
                   ("now", "Krok 2: Wybierz pliki i wpisz hasła"), ("later", "Krok 3: Wgraj certyfikaty")]


def test_steps_in_english(web: WebClient, client_company) -> None:  # noqa: ANN001
    web.post("/language", {"lang": "en", "next": "/"})
    bar = steps(web.get(f"/clients/{client_company.id}/wizard"))
    assert bar[0] == ("now", "Step 1: Choose the authorization method")


# -- item 15: "Dodaj autoryzację" from a NIP ---------------------------------------------------------------


def test_clients_list_offers_add_authorization(web: WebClient) -> None:
    page = soup(web.get("/clients"))
    link = page.find("a", string="Dodaj autoryzację")
    assert link is not None and link["href"] == "/clients/authorize"


def test_authorize_known_nip_goes_to_its_wizard(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    web.get("/clients/authorize")
    before = dump(store)
    response = web.post("/clients/authorize", {"nip": "PL 526-104-08-28"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/clients/{client_company.id}/wizard")
    assert dump(store) == before


def test_authorize_new_nip_asks_for_the_name_then_creates_the_client(web: WebClient, store: Store) -> None:
    web.get("/clients/authorize")
    first = web.post("/clients/authorize", {"nip": NEW_NIP})
    assert first.status_code == 200
    page = soup(first)
    assert page.select_one("input#name") is not None
    assert "Nie ma jeszcze klienta z tym NIP-em" in page.get_text()
    with store.connect() as db:
        assert clients.find_by_nip(db, NEW_NIP) is None
    second = web.post("/clients/authorize", {"nip": NEW_NIP, "name": "Nowa Firma sp. z o.o."})
    assert second.status_code == 303
    with store.connect() as db:
        created = clients.find_by_nip(db, NEW_NIP)
        assert created is not None and created.name == "Nowa Firma sp. z o.o."
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE object_id = ?", [str(created.id)])]
    assert second.headers["Location"].endswith(f"/clients/{created.id}/wizard")
    assert actions == ["clients.create"]


def test_authorize_bad_nip_says_what_is_wrong_and_stores_nothing(web: WebClient, store: Store) -> None:
    web.get("/clients/authorize")
    before = dump(store)
    response = web.post("/clients/authorize", {"nip": "123", "name": "X"})
    assert response.status_code == 422
    assert soup(response).select_one("#nip-error").get_text(strip=True)
    assert dump(store) == before


def test_authorize_archived_nip_is_refused_with_a_link(web: WebClient, store: Store, client_company) -> None:  # noqa: ANN001
    with store.write() as db:
        clients.set_archived(db, client_company.id, True, actor=ADMIN, at=NOW)
    web.get("/clients/authorize")
    response = web.post("/clients/authorize", {"nip": CLIENT_NIP})
    assert response.status_code == 422
    page = soup(response)
    assert "jest w archiwum" in page.get_text()
    assert page.find("a", href=f"/clients/{client_company.id}") is not None
