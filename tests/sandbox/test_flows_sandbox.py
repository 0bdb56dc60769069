"""Issue 9, flows against the real sandbox: one-click XML, the step bar as an attempt moves, stale states after
"Gotowe", a NIP change after a real connection, and a failed KSeF call in the audit log."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from bs4 import BeautifulSoup

from klucznik.authorize.session import active_tokens
from klucznik.records import clients
from tests.sandbox.test_wizard_pages import sign
from tests.sandbox.test_wizard_pages import text
from tests.sandbox.test_wizard_pages import wiz  # noqa: F401 - the fixture

NEW_NIP = "7740001454"


def soup(response) -> BeautifulSoup:  # noqa: ANN001
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def current_step(response) -> str | None:  # noqa: ANN001
    """The number of the step marked current in the step bar (``None`` when every step is done)."""
    found = soup(response).select_one("#step-bar li[aria-current=step]")
    return found["data-step"] if found else None


def connect_with_method_1(wiz):  # noqa: ANN001, F811
    attempt = wiz.new_attempt()
    assert wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip)).status_code == 200
    wiz.submit(attempt)
    return attempt, wiz.follow(attempt)


# -- item 18: one click, a file named after the NIP and the date -------------------------------------------------


def test_one_click_opens_the_attempt_and_starts_the_download(wiz):  # noqa: F811
    page = wiz.web.get(f"{wiz.base}/grant")
    buttons = [b.get_text(strip=True) for b in soup(page).select("section.step button, section.step a.button")]
    assert buttons.count("Pobierz plik XML") == 1
    response = wiz.web.post(f"{wiz.base}/grant/new")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.search(r"/attempts/\d+\?download=1$", location)
    opened = wiz.web.get(location)
    request_id = int(re.search(r"/attempts/(\d+)", location).group(1))
    download_url = f"{wiz.base}/attempts/{request_id}/AuthTokenRequest.xml"
    refresh = soup(opened).select_one('meta[http-equiv="refresh"]')
    assert refresh is not None and refresh["content"] == f"0; url={download_url}"
    day = wiz.clock().astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%d")
    name = f"AuthTokenRequest-{wiz.company.nip}-{day}.xml"
    assert f"Plik {name} jest pobierany" in text(opened)
    file = wiz.web.get(download_url)
    assert file.headers["Content-Disposition"] == f"attachment; filename={name}"
    # the page offers the same file again under another label, and a reload does not download again
    again = wiz.web.get(f"{wiz.base}/attempts/{request_id}")
    assert soup(again).select_one('meta[http-equiv="refresh"]') is None
    labels = [a.get_text(strip=True) for a in soup(again).select("section.step a.button, section.step button")]
    assert "Pobierz plik ponownie" in labels and "Pobierz plik XML" not in labels
    assert soup(again).select_one(f'a[download="{name}"]') is not None


# -- item 15: the step bar follows the attempt ------------------------------------------------------------------


def test_the_step_bar_follows_the_attempt(wiz):  # noqa: F811
    assert current_step(wiz.web.get(f"{wiz.base}/grant")) == "2"
    attempt = wiz.new_attempt()
    assert current_step(wiz.web.get(wiz.url(attempt))) == "3"
    checked = wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip))
    bar = soup(checked).select_one("#step-bar")
    assert bar["hx-swap-oob"] == "true" and current_step(checked) == "4"
    wiz.submit(attempt)
    final = wiz.follow(attempt)
    assert current_step(final) is None
    assert [li["class"][0] for li in soup(final).select("#step-bar li")] == ["done"] * 4


# -- item 17: a NIP change after a real connection -----------------------------------------------------------


def test_nip_change_after_method_1_retires_the_tokens(wiz):  # noqa: F811
    connect_with_method_1(wiz)
    web, company = wiz.web, wiz.company
    form = {"nip": NEW_NIP, "name": company.name, "email": company.email, "notes": ""}
    web.get(f"/clients/{company.id}/edit")
    assert web.post(f"/clients/{company.id}/edit", form).status_code == 409
    with wiz.store.connect() as db:
        assert active_tokens(db, company.id) is not None
        assert clients.get_client(db, company.id).auth_method == "grant"
    assert web.post(f"/clients/{company.id}/edit", {**form, "confirm_nip_change": NEW_NIP}).status_code == 303
    with wiz.store.connect() as db:
        assert active_tokens(db, company.id) is None
        assert clients.get_client(db, company.id).auth_method is None
        assert db.execute("SELECT DISTINCT old_nip FROM auth_requests").fetchall() == [(company.nip,)]
        assert db.execute("SELECT status, old_nip FROM ksef_tokens").fetchall() == [("superseded", company.nip)]
    view = web.get(f"/clients/{company.id}")
    assert "Jeszcze niepodłączony" in text(view)
    assert "starego NIP-u" in text(view)
    # the wizard starts afresh for the new NIP
    page = wiz.web.get(f"{wiz.base}/grant")
    assert current_step(page) == "2"


# -- item 19: nothing stale after "Gotowe" -------------------------------------------------------------------


def test_after_done_the_page_no_longer_offers_the_file_nor_its_minutes(wiz):  # noqa: F811
    attempt = wiz.new_attempt()
    opened = wiz.web.get(wiz.url(attempt))
    assert "min" in soup(opened).select_one("#validity").get_text()  # while the file is valid
    attempt, final = connect_with_method_1(wiz)
    # the last htmx answer swaps the download step out of band: no file, no minutes left
    section = soup(final).select_one("#step-download")
    assert section is not None and section["hx-swap-oob"] == "true"
    assert "Nowy plik nie jest potrzebny" in section.get_text()
    assert section.select("a[download], form") == []
    assert "zostało" not in section.get_text()
    # the validity poll of a page opened earlier stops and says nothing any more
    validity = wiz.web.get(wiz.url(attempt, "validity"), htmx=True)
    assert validity.status_code == 286
    assert soup(validity).select_one("#validity").get_text(strip=True) == ""
    # and a reload of the page shows the same
    page = soup(wiz.web.get(wiz.url(attempt)))
    assert page.select("#step-download a[download], #step-download form") == []
    assert "zostało" not in page.get_text()


def test_a_too_large_signed_file_is_said_under_the_field(wiz):  # noqa: F811
    from tests.web.test_flows_web import too_large_post

    attempt = wiz.new_attempt()
    response = too_large_post(wiz.web, wiz.url(attempt, "upload"), "signed")
    assert response.status_code == 422
    assert "za duży" in soup(response).select_one(".alert-error").get_text()
    later = wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip))
    assert later.status_code == 200
    assert soup(later).select_one('[hx-swap-oob="innerHTML:#alerts"]') is not None


# -- item 20: a failed KSeF call is in the audit log, in words ------------------------------------------------


def test_a_503_on_the_challenge_is_in_the_audit_log(wiz):  # noqa: F811
    wiz.web.get(f"{wiz.base}/grant")
    wiz.server.inject("POST /auth/challenge", "error", status=503, times=10)
    response = wiz.web.post(f"{wiz.base}/grant/new")
    assert response.status_code == 503
    with wiz.store.connect() as db:
        rows = list(db.query("SELECT actor, action, object_id, details FROM audit_log "
                             "WHERE action = 'ksef.auth.challenge_failed'"))
        operations = list(db.query("SELECT operation, ok, http_status FROM ksef_operations"))
    assert len(rows) == 1 and rows[0]["actor"] == "admin" and rows[0]["object_id"] == str(wiz.company.id)
    assert '"http_status": 503' in rows[0]["details"]
    assert operations == [{"operation": "auth.challenge", "ok": 0, "http_status": 503}]
    page = soup(wiz.web.get("/admin/audit"))
    row = page.select_one('tr[data-action="ksef.auth.challenge_failed"]')
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[2] == "KSeF: nie udało się przygotować pliku logowania"
    assert cells[3] == f"{wiz.company.name} (NIP 526-104-08-28)"
    assert "status HTTP: 503" in cells[4]
    moment = wiz.clock().astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%d %H:%M")
    assert cells[0].startswith(moment)


def test_a_503_while_following_is_audited_once_per_outage(wiz):  # noqa: F811
    attempt = wiz.new_attempt()
    assert wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip)).status_code == 200
    wiz.server.inject("GET /auth/{referenceNumber}", "error", status=503, times=None)
    wiz.submit(attempt)
    for _ in range(3):  # three polls during the outage: the page says the portal keeps trying
        response = wiz.web.get(wiz.url(attempt, "progress"), htmx=True)
        assert response.status_code == 200 and "Portal próbuje dalej" in text(response)
    with wiz.store.connect() as db:
        audited = list(db.query("SELECT details FROM audit_log WHERE action = 'ksef.call_failed'"))
        failures = list(db.query("SELECT operation, http_status FROM ksef_operations WHERE ok = 0"))
    assert len(audited) == 1 and '"http_status": 503' in audited[0]["details"]
    assert failures == [{"operation": "wizard.submitted", "http_status": 503}]
    row = soup(wiz.web.get("/admin/audit")).select_one('tr[data-action="ksef.call_failed"]')
    assert "KSeF chwilowo nie odpowiada" in row.get_text(" ", strip=True)
    wiz.server.clear_faults()
    final = wiz.follow(attempt)
    assert soup(final).select_one("#progress")["data-status"] == "done"
