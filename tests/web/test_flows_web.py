"""Issue 9, flows: the numbered steps, "Dodaj autoryzację" from a NIP, and the other flow fixes in the web."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from io import BytesIO

import pytest
from bs4 import BeautifulSoup
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from klucznik.instance.store import Store
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import tokens
from tests.support.certificates import AT
from tests.support.defaults import ADMIN
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW
from tests.support.instances import dump
from tests.support.web import WebClient
from tests.web.test_cert_upload import button_disabled
from tests.web.test_cert_upload import post_check
from tests.web.test_cert_upload import post_upload
from tests.web.test_cert_upload import statuses
from tests.web.test_cert_upload import upload_url
from tests.web.test_cert_upload import valid_form

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


# -- item 16: the online pair alone; what is still missing ------------------------------------------------


@pytest.fixture
def pinned(app):
    """Validation time pinned to :data:`AT` (the generated certificates are valid around it)."""
    app.config["KLUCZNIK_CLOCK"] = lambda: AT
    return app


def online_only() -> dict[str, object]:
    form = valid_form()
    for name in ("offline_crt", "offline_key", "offline_password"):
        del form[name]
    return form


def offline_only() -> dict[str, object]:
    form = valid_form()
    for name in ("online_crt", "online_key", "online_password"):
        del form[name]
    return form


def missing(response) -> dict[str, list[str]]:  # noqa: ANN001
    box = soup(response).select_one("#upload-missing")
    assert box is not None
    return {ul["data-list"]: [li.get_text(strip=True) for li in ul.select("li")] for ul in box.select("ul")}


def test_online_pair_alone_enables_the_button_and_says_what_the_client_lacks(web, client_company, pinned):  # noqa: ANN001
    response = post_check(web, client_company.id, "online-password", online_only())
    assert response.status_code == 200
    assert not button_disabled(response)
    assert missing(response) == {}
    notice = soup(response).select_one("[data-notice=offline-later]").get_text(" ", strip=True)
    assert "trybie offline" in notice and "KOD II" in notice and "później" in notice
    assert statuses(response)["offline-crt"][0] == "empty"


def test_online_pair_alone_is_stored_and_the_offline_pair_follows_later(web, store, client_company, pinned):  # noqa: ANN001
    form = online_only()
    assert post_upload(web, client_company.id, form).status_code == 303
    with store.connect() as db:
        rows = list(db.query("SELECT slot, status FROM credentials WHERE client_id = ?", [client_company.id]))
        audit = list(db.query("SELECT details FROM audit_log WHERE action = 'credentials.upload'"))
        assert clients.get_client(db, client_company.id).auth_method == "user_certs"
    assert rows == [{"slot": "online", "status": "active"}]
    assert "online_serial" in audit[0]["details"] and "offline_serial" not in audit[0]["details"]
    view = soup(web.get(f"/clients/{client_company.id}"))
    assert "nie może wystawiać faktur w trybie offline" in view.select_one("[data-notice=offline-missing]").get_text()
    # later: the offline pair alone (the online section may stay empty now that the client has one)
    page = soup(web.get(upload_url(client_company.id)))
    assert page.select_one("[data-optional=online]") is not None
    check = post_check(web, client_company.id, "offline-password", offline_only())
    assert not button_disabled(check) and missing(check) == {}
    assert soup(check).select_one("[data-notice=offline-later]") is None
    assert post_upload(web, client_company.id, offline_only()).status_code == 303
    with store.connect() as db:
        rows = list(db.query("SELECT slot, status FROM credentials WHERE client_id = ? ORDER BY id",
                             [client_company.id]))
    assert rows == [{"slot": "online", "status": "active"}, {"slot": "offline", "status": "active"}]
    assert soup(web.get(f"/clients/{client_company.id}")).select_one("[data-notice=offline-missing]") is None


def test_nothing_given_is_not_enough_even_with_a_stored_online_pair(web, store, client_company, pinned):  # noqa: ANN001
    assert post_upload(web, client_company.id, online_only()).status_code == 303
    before = dump(store)
    response = post_upload(web, client_company.id, {"nip": "526-104-08-28"})
    assert response.status_code == 422
    assert dump(store) == before


def test_the_missing_list_next_to_the_disabled_button(web, client_company, pinned):  # noqa: ANN001
    first = soup(web.get(upload_url(client_company.id)))
    assert first.select_one("#upload-submit").has_attr("disabled")
    assert [li.get_text(strip=True) for li in first.select("#upload-missing [data-list=to-fill] li")] == [
        "certyfikat uwierzytelniający (.crt)", "klucz prywatny certyfikatu uwierzytelniającego (.key)"]
    form = online_only()
    del form["online_key"]
    del form["online_password"]
    response = post_check(web, client_company.id, "online-crt", form)
    assert button_disabled(response)
    assert missing(response) == {"to-fill": ["klucz prywatny certyfikatu uwierzytelniającego (.key)"]}
    form = {**online_only(), "online_password": "zle-haslo"}
    response = post_check(web, client_company.id, "online-password", form)
    assert button_disabled(response)
    assert missing(response) == {"to-fix": ["hasło klucza uwierzytelniającego"]}
    form = online_only()
    del form["online_password"]
    response = post_check(web, client_company.id, "online-key", form)
    assert missing(response) == {"to-fill": ["hasło klucza uwierzytelniającego"]}
    # a started offline section must be completed (or emptied)
    form = {**online_only(), "offline_crt": valid_form()["offline_crt"]}
    response = post_check(web, client_company.id, "offline-crt", form)
    assert button_disabled(response)
    assert missing(response) == {"to-fill": ["klucz prywatny certyfikatu offline (.key)"]}
    assert soup(response).select_one("[data-notice=offline-later]") is None


def test_inline_checks_of_one_form_replace_each_other(web, client_company, pinned):  # noqa: ANN001
    page = soup(web.get(upload_url(client_company.id)))
    inputs = page.select("#cert-upload [hx-post]")
    assert len(inputs) == 7
    assert all(element["hx-sync"] == "closest form:replace" for element in inputs)


# -- item 17: a connected client's NIP changes only after a confirmation -------------------------------------


def connect(web, store, company) -> None:  # noqa: ANN001
    """Connect ``company``: the online pair uploaded (method 3), KSeF tokens, and a login attempt under way."""
    assert post_upload(web, company.id, online_only()).status_code == 303
    with store.write() as db:
        tokens.store_tokens(db, client_id=company.id, context_nip=company.nip, reference="20261201-AU-1",
                            tokens=tokens.StoredTokens("access", NOW, "refresh", NOW), at=NOW)
        db["auth_requests"].insert({
            "client_id": company.id, "method": "grant", "challenge": "20261201-CR-1", "challenge_timestamp": "x",
            "expires_at": "2026-12-01T09:10:00Z", "unsigned_xml": b"<x/>", "status": "submitted",
            "authentication_token": "op-token", "created_at": "2026-12-01T09:00:00Z",
            "updated_at": "2026-12-01T09:00:00Z"})


def edit_form(company, nip: str) -> dict[str, str]:  # noqa: ANN001
    return {"nip": nip, "name": company.name, "email": company.email, "notes": ""}


def test_changing_the_nip_of_a_connected_client_asks_first(web, store, client_company, pinned):  # noqa: ANN001
    connect(web, store, client_company)
    web.get(f"/clients/{client_company.id}/edit")
    before = dump(store)
    response = web.post(f"/clients/{client_company.id}/edit", edit_form(client_company, NEW_NIP))
    assert response.status_code == 409
    assert dump(store) == before
    box = soup(response).select_one("#confirm-nip-change")
    text = box.get_text(" ", strip=True)
    assert "połączony z KSeF dla NIP 526-104-08-28" in text and "525-295-50-37" in text
    assert box.select_one("input[name=confirm_nip_change]")["value"] == NEW_NIP
    assert box.find("a", href=f"/clients/new?nip={NEW_NIP}") is not None
    # the alternative: a new client with that NIP, the form filled in
    new_form = soup(web.get(f"/clients/new?nip={NEW_NIP}"))
    assert new_form.select_one("input#nip")["value"] == NEW_NIP


def test_a_confirmed_nip_change_retires_the_old_authorization(web, store, client_company, pinned):  # noqa: ANN001
    connect(web, store, client_company)
    web.get(f"/clients/{client_company.id}/edit")
    form = {**edit_form(client_company, "525-295-50-37"), "confirm_nip_change": NEW_NIP}
    response = web.post(f"/clients/{client_company.id}/edit", form)
    assert response.status_code == 303
    with store.connect() as db:
        client = clients.get_client(db, client_company.id)
        assert client.nip == NEW_NIP and client.auth_method is None
        assert not clients.is_connected(db, client.id)
        creds = list(db.query("SELECT status, old_nip FROM credentials"))
        toks = list(db.query("SELECT status, old_nip FROM ksef_tokens"))
        attempts = list(db.query("SELECT status, old_nip, authentication_token, followup FROM auth_requests"))
        assert tokens.active_tokens(db, client.id) is None
        audit = list(db.query("SELECT details FROM audit_log WHERE action = 'clients.update'"))
    assert creds == [{"status": "superseded", "old_nip": CLIENT_NIP}]
    assert toks == [{"status": "superseded", "old_nip": CLIENT_NIP}]
    assert [(a["status"], a["old_nip"], a["authentication_token"]) for a in attempts] == [("failed", CLIENT_NIP, None)]
    assert "starego NIP-u" in attempts[0]["followup"]
    assert '"credentials": 1' in audit[-1]["details"] and '"tokens": 1' in audit[-1]["details"]
    page = soup(web.get(f"/clients/{client_company.id}"))
    assert "należy do starego NIP-u 526-104-08-28" in page.select_one("[data-notice=old-nip]").get_text()
    assert "nieużywany: należy do starego NIP-u 526-104-08-28" in page.select_one("table.list").get_text()


def test_a_confirmation_for_another_nip_does_not_count(web, store, client_company, pinned):  # noqa: ANN001
    connect(web, store, client_company)
    web.get(f"/clients/{client_company.id}/edit")
    before = dump(store)
    form = {**edit_form(client_company, "7740001454"), "confirm_nip_change": NEW_NIP}
    assert web.post(f"/clients/{client_company.id}/edit", form).status_code == 409
    assert dump(store) == before


def test_a_client_not_connected_changes_its_nip_at_once(web, store, client_company) -> None:  # noqa: ANN001
    web.get(f"/clients/{client_company.id}/edit")
    response = web.post(f"/clients/{client_company.id}/edit", edit_form(client_company, NEW_NIP))
    assert response.status_code == 303
    with store.connect() as db:
        assert clients.get_client(db, client_company.id).nip == NEW_NIP
        assert clients.old_nips(db, client_company.id) == []


# -- item 19: stale states ---------------------------------------------------------------------------------


def test_after_a_refused_submit_no_green_status_stays_over_an_emptied_field(web, store, client_company, pinned):  # noqa: ANN001
    form = {**valid_form(), "offline_password": "zle-haslo"}
    response = post_upload(web, client_company.id, form)
    assert response.status_code == 422
    found = statuses(response)
    assert found["offline-password"][0] == "error"
    # only the NIP input keeps its value after the refusal, so only its verdict may stay green
    assert {target: state for target, (state, _codes, _text) in found.items() if state == "ok"} == {"nip": "ok"}
    assert [box.parent["id"] for box in soup(response).select(".cert-summary")] == ["status-nip"]


def too_large_post(web, url: str, field: str, *, htmx: bool = True):  # noqa: ANN001
    """A post of one file above the portal's 2 MB limit (encoded in memory: the test client would otherwise
    spool it to a temporary file it never closes)."""
    boundary, body = encode_multipart({field: FileStorage(BytesIO(b"0" * (3 * 1024 * 1024)), "big.crt")})
    headers = {"X-CSRFToken": web.token(), **({"HX-Request": "true"} if htmx else {})}
    return web.client.post(url, data=body, headers=headers, content_type=f"multipart/form-data; boundary={boundary}")


def test_a_too_large_file_is_explained_at_the_field_and_goes_away(web, client_company, pinned):  # noqa: ANN001
    web.get(upload_url(client_company.id))
    response = too_large_post(web, f"/clients/{client_company.id}/certificates/check/online-crt", "online_crt")
    assert response.status_code == 422  # swapped like any verdict, not an error banner
    found = statuses(response)
    assert found["online-crt"][0] == "error" and "za duży" in found["online-crt"][2]
    assert "2 MB" in found["online-crt"][2]
    assert button_disabled(response)
    # a later file that passes replaces it, and clears any banner left in #alerts
    later = post_check(web, client_company.id, "online-password", online_only())
    assert statuses(later)["online-crt"][0] == "ok"
    assert soup(later).select_one('[hx-swap-oob="innerHTML:#alerts"]') is not None


def test_a_too_large_final_upload_says_so_on_the_page(web, store, client_company, pinned):  # noqa: ANN001
    web.get(upload_url(client_company.id))
    before = dump(store)
    response = too_large_post(web, upload_url(client_company.id), "online_crt", htmx=False)
    assert response.status_code == 413
    assert "za duży" in soup(response).select_one(".alert-error").get_text()
    assert soup(response).select_one("#cert-upload") is not None
    assert dump(store) == before


# -- item 20: the audit log for people -----------------------------------------------------------------------


def audit_rows(response) -> list[dict[str, str]]:  # noqa: ANN001
    rows = []
    for tr in soup(response).select("table.audit tbody tr"):
        cells = [td.get_text(" ", strip=True) for td in tr.select("td")]
        rows.append({"action": tr["data-action"], "when": cells[0], "user": cells[1], "what": cells[2],
                     "object": cells[3], "details": cells[4]})
    return rows


def test_the_audit_log_shows_names_words_changes_and_polish_time(web, store, client_company) -> None:  # noqa: ANN001
    web.get(f"/clients/{client_company.id}/edit")
    form = {"nip": CLIENT_NIP, "name": "Nowa Nazwa S.A.", "email": "kontakt@nowa.pl", "notes": ""}
    assert web.post(f"/clients/{client_company.id}/edit", form).status_code == 303
    rows = audit_rows(web.get("/admin/audit"))
    update = next(r for r in rows if r["action"] == "clients.update")
    assert update["what"] == "Zmiana danych klienta"
    assert update["object"] == "Nowa Nazwa S.A. (NIP 526-104-08-28)"
    assert "nazwa : Przykładowa Spółka z o.o. → Nowa Nazwa S.A." in update["details"]
    assert "e-mail : biuro@przyklad.pl → kontakt@nowa.pl" in update["details"]
    assert "klient 1" not in update["object"]
    created = next(r for r in rows if r["action"] == "clients.create")
    assert created["when"] == "2026-12-01 10:00:00"  # NOW is 09:00 UTC: 10:00 in Warsaw in December
    login = next(r for r in rows if r["action"] == "auth.login")
    assert login["what"] == "Zalogowanie" and login["object"] == "użytkownik admin"
    page = soup(web.get("/admin/audit"))
    assert page.find("th", string="Kiedy (czas polski)") is not None
    labels = [o.get_text(strip=True) for o in page.select("select[name=action] option")]
    assert "Zmiana danych klienta" in labels and "clients.update" not in labels
    web.post("/language", {"lang": "en", "next": "/"})
    english = audit_rows(web.get("/admin/audit"))
    assert next(r for r in english if r["action"] == "clients.update")["what"] == "Client data changed"


def test_audit_dates_are_the_offices_days(web, store, client_company) -> None:  # noqa: ANN001
    # 2026-12-01 23:30 UTC is already 2 December in Warsaw
    with store.write() as db:
        audit.record(db, actor="admin", action="clients.archive", object_type="client",
                     object_id=client_company.id, at=datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    on_2nd = audit_rows(web.get("/admin/audit?action=clients.archive&since=2026-12-02&until=2026-12-02"))
    assert [r["action"] for r in on_2nd] == ["clients.archive"]
    assert on_2nd[0]["when"] == "2026-12-02 00:30:00"
    on_1st = audit_rows(web.get("/admin/audit?action=clients.archive&since=2026-12-01&until=2026-12-01"))
    assert "clients.archive" not in [r["action"] for r in on_1st]
