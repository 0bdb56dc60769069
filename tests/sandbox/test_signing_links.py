"""One-time signing links against the real sandbox: off by default, the client's page (fresh challenge, file named
after the NIP and date, upload with the pre-check and its warning, send), one use, expiry, sealed, throttled; and
after sending, the page following the attempt to KSeF's answer (accepted, refused, KSeF not answering for a
while, sealed, the window after the use closing)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik.authorize import links
from klucznik.authorize.requests import get_request
from klucznik.ksef.transport import RetryPolicy
from klucznik.records import clients
from klucznik.records import office
from sandbox import ca
from sandbox import signer
from tests.support.defaults import NOW


class Clock:
    def __init__(self, server) -> None:
        self.server, self.offset = server, timedelta()

    def __call__(self):
        return self.server.state.now() + self.offset


@pytest.fixture
def portal(app, web, anon, store, client_company, sandbox_server, sandbox_office):
    clock = Clock(sandbox_server)
    app.config["KLUCZNIK_CLOCK"] = clock
    app.config["KSEF_CLIENT_OPTIONS"] = {
        "retries": RetryPolicy(attempts=3, backoff=0.0, rate_limit_attempts=2, max_retry_after=1),
        "sleep": lambda seconds: None, "clock": sandbox_server.state.now, "timeout": (2.0, 5.0),
    }
    return web, anon, clock


def _link(web, client_id, method="grant") -> str:
    response = web.post(f"/clients/{client_id}/links", {"method": method}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    url = BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one("#link-url")["value"]
    assert url.startswith("https://portal.biuro.test/podpis/")
    return url.removeprefix("https://portal.biuro.test")


def _turn_on(web) -> None:
    response = web.post("/office/links", {"enabled": "1", "public_url": "https://portal.biuro.test"})
    assert response.status_code in (200, 303), response.get_data(as_text=True)


def test_links_are_off_until_an_admin_sets_an_https_address(portal, client_company):
    web, _, _ = portal
    refused = web.post(f"/clients/{client_company.id}/links", {"method": "grant"}, htmx=True)
    assert refused.status_code == 422 and "wyłączone" in refused.get_data(as_text=True)
    plain = web.post("/office/links", {"enabled": "1", "public_url": "http://portal.biuro.test"})
    assert plain.status_code == 422 and "https://" in plain.get_data(as_text=True)
    _turn_on(web)
    assert _link(web, client_company.id)


def test_the_client_signs_through_the_link_once(portal, store, client_company, sandbox_server):
    web, anon, clock = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    page = anon.get(path)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert client_company.name in body and "Podpis pliku dla KSeF" in body
    download = BeautifulSoup(body, "html.parser").select_one("#download")["href"]
    response = anon.get(download)
    day = sandbox_server.state.now().strftime("%Y%m%d")
    assert response.headers["Content-Disposition"] == f"attachment; filename=AuthTokenRequest-{client_company.nip}-{day}.xml"
    unsigned = response.get_data()

    other_certificate, other_key = ca.qualified_identity(nip="7792433527")
    sandbox_server.seed_permissions(context_nip=client_company.nip, identifier_type="Nip", identifier="7792433527",
                                    permissions=["CredentialsManage"])
    signed = signer.sign(unsigned, certificate=other_certificate, private_key=other_key, style="enveloped")
    checked = anon.post(f"{path}/upload", files={"signed": (signed, "podpisany.xml")})
    assert checked.status_code == 200
    warning = BeautifulSoup(checked.get_data(as_text=True), "html.parser").select_one("[data-warning=signer]")
    assert warning is not None and "inna firma (NIP 7792433527)" in warning.get_text()
    assert sandbox_server.exchanges("/auth/xades-signature") == []  # nothing sent before the client confirms

    sent = anon.post(f"{path}/send")
    assert sent.status_code == 200 and "przekazany do KSeF" in sent.get_data(as_text=True)
    assert sandbox_server.exchanges("/auth/xades-signature")[-1].body == signed
    challenges = len(sandbox_server.exchanges("/auth/challenge"))
    again = anon.get(path)  # one successful use: opened again, it shows how the attempt goes, no new file
    assert again.status_code == 200 and 'id="link-status"' in again.get_data(as_text=True)
    assert 'id="download"' not in again.get_data(as_text=True)
    assert len(sandbox_server.exchanges("/auth/challenge")) == challenges
    clock.offset = links.FOLLOW_WINDOW + timedelta(seconds=1)
    gone = anon.get(path)
    assert gone.status_code == 410 and "Poproś biuro rachunkowe o nowy" in gone.get_data(as_text=True)
    with store.connect() as db:
        request_id = db.execute("SELECT auth_request_id FROM signing_links").fetchone()[0]
        assert get_request(db, request_id).status == "submitted"
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE actor LIKE 'link:%'")]
    assert {"link.open", "ksef.auth.upload", "ksef.auth.submit", "link.used"} <= set(actions)


def test_a_use_the_portal_stopped_before_recording_is_recorded_when_the_link_opens_again(
    portal, store, client_company, sandbox_server
):
    """Sending and marking the link used are two writes: a portal stopped between them left the link unused
    although KSeF accepted its file. Opened again, it records the use (audited once) and follows that attempt
    instead of issuing a new challenge that would drop it."""
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    body = anon.get(path).get_data(as_text=True)
    unsigned = anon.get(BeautifulSoup(body, "html.parser").select_one("#download")["href"]).get_data()
    certificate, key = ca.qualified_identity(nip=client_company.nip)
    signed = signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped")
    assert anon.post(f"{path}/upload", files={"signed": (signed, "podpisany.xml")}).status_code == 200
    assert anon.post(f"{path}/send").status_code == 200
    with store.write() as db:  # the state a stop between the two writes leaves
        db.execute("UPDATE signing_links SET used_at = NULL")
        request_id = db.execute("SELECT auth_request_id FROM signing_links").fetchone()[0]
    challenges = len(sandbox_server.exchanges("/auth/challenge"))

    again = anon.get(path)
    assert again.status_code == 200 and 'id="link-status"' in again.get_data(as_text=True)
    assert 'id="download"' not in again.get_data(as_text=True)
    assert len(sandbox_server.exchanges("/auth/challenge")) == challenges
    anon.get(path)
    with store.connect() as db:
        link_row = db.execute("SELECT used_at, auth_request_id FROM signing_links").fetchone()
        settled = db.execute("SELECT count(*) FROM audit_log WHERE action = 'link.used' "
                             "AND json_extract(details, '$.settled')").fetchone()[0]
    assert link_row[0] is not None and link_row[1] == request_id and settled == 1
    assert anon.post(f"{path}/upload", files={"signed": (signed, "podpisany.xml")}).status_code == 410


def test_an_expired_link_and_a_wrong_one_say_the_same(portal, client_company):
    web, anon, clock = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    assert anon.get(path.replace(path[-5:], "xxxxx")).status_code == 410
    clock.offset = timedelta(days=7, seconds=1)
    expired = anon.get(path)
    assert expired.status_code == 410 and client_company.name not in expired.get_data(as_text=True)


def test_a_sealed_portal_asks_to_try_later(portal, store, client_company):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    store.seal()
    sealed = anon.get(path)
    assert sealed.status_code == 503 and "Spróbuj ponownie później" in sealed.get_data(as_text=True)


def test_the_page_is_throttled(portal, client_company):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    statuses = [anon.get(f"{path}/x.xml").status_code for _ in range(31)]
    assert statuses[-1] == 429 and 429 not in statuses[:30]


def test_the_office_wizard_warns_about_another_signer_too(portal, client_company):
    web, _, _ = portal
    base = f"/clients/{client_company.id}/wizard"
    response = web.post(f"{base}/grant/new")
    attempt_id = int(re.search(r"/attempts/(\d+)", response.headers["Location"]).group(1))
    unsigned = web.get(f"{base}/attempts/{attempt_id}/AuthTokenRequest.xml").get_data()
    certificate, key = ca.qualified_identity(nip="7792433527")
    signed = signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped")
    checked = web.post(f"{base}/attempts/{attempt_id}/upload", files={"signed": (signed, "a.xml")}, htmx=True)
    assert 'data-warning="signer"' in checked.get_data(as_text=True)


# -- after sending: the page follows the attempt to KSeF's answer ---------------------------------------------

OTHER_NIP = "7792433527"
OTHER_NAME = "Inna Firma Handlowa S.A."


def _send(anon, path, *, nip=None, pesel=None) -> None:
    """Open the link's page, sign its file as ``nip`` (or ``pesel``), upload it and send it to KSeF."""
    body = anon.get(path).get_data(as_text=True)
    unsigned = anon.get(BeautifulSoup(body, "html.parser").select_one("#download")["href"]).get_data()
    certificate, key = ca.qualified_identity(nip=nip, pesel=pesel)
    signed = signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped")
    assert anon.post(f"{path}/upload", files={"signed": (signed, "podpisany.xml")}).status_code == 200
    sent = anon.post(f"{path}/send")
    assert sent.status_code == 200, sent.get_data(as_text=True)
    status = BeautifulSoup(sent.get_data(as_text=True), "html.parser").select_one("#link-status")
    assert status["data-state"] == "checking" and status["hx-trigger"] == "every 3s"
    assert status["hx-get"] == f"{path}/status"


def _poll(anon, path, *, limit: int = 10) -> list:
    """Ask for the status as the page's htmx does, until the answer that stops the polling (286)."""
    answers = []
    for _ in range(limit):
        answers.append(anon.get(f"{path}/status", htmx=True))
        assert answers[-1].status_code in (200, 286), answers[-1].get_data(as_text=True)
        if answers[-1].status_code == 286:
            return answers
        assert 'hx-trigger="every 3s"' in answers[-1].get_data(as_text=True)
    raise AssertionError("the status never became final")


def _state(response) -> str:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one("#link-status")["data-state"]


def _link_actions(store, action: str) -> list[str]:
    with store.connect() as db:
        return [r[0] for r in db.execute("SELECT actor FROM audit_log WHERE action = ?", [action])]


def test_the_page_follows_the_attempt_until_ksef_accepts_it(portal, store, client_company, sandbox_server):
    web, anon, _ = portal
    _turn_on(web)
    with store.write() as db:
        other = clients.create_client(db, clients.validate(nip=OTHER_NIP, name=OTHER_NAME), actor="admin", at=NOW)
    other_path = _link(web, other.id)
    assert anon.get(other_path).status_code == 200  # the other client's link is open too, with its own attempt
    path = _link(web, client_company.id)
    assert anon.get(path).status_code == 200
    nothing_yet = anon.get(f"{path}/status", htmx=True)
    assert nothing_yet.status_code == 286 and _state(nothing_yet) == "not_sent"

    _send(anon, path, nip=client_company.nip)
    answers = _poll(anon, path)
    assert [_state(a) for a in answers] == ["checking"] * (len(answers) - 1) + ["accepted"]
    final = answers[-1].get_data(as_text=True)
    assert "KSeF przyjął podpis." in final and "Biuro rachunkowe dokończy resztę" in final
    assert "hx-trigger" not in final and "hx-get" not in final
    for answer in answers:  # only this link's attempt: nothing of the other client, no internals
        text = answer.get_data(as_text=True)
        assert OTHER_NAME not in text and other.nip not in text and other.nip_formatted not in text
        assert "AU-" not in text and "/clients/" not in text
    assert "HX-Request" in answers[0].headers["Vary"]
    assert _link_actions(store, "ksef.auth.success") == [f"link:{_link_id(store, client_company.id)}"]

    # Used: the status and the page still show the answer (KSeF is not asked again); nothing new can start.
    polls = len(sandbox_server.exchanges())
    assert anon.get(f"{path}/status", htmx=True).status_code == 286
    reopened = anon.get(path)
    assert reopened.status_code == 200 and "KSeF przyjął podpis." in reopened.get_data(as_text=True)
    assert "Link został wykorzystany" in reopened.get_data(as_text=True)
    assert len(sandbox_server.exchanges()) == polls  # no new challenge, no status question
    assert anon.post(f"{path}/upload", files={"signed": (b"<x/>", "a.xml")}).status_code == 410
    assert anon.post(f"{path}/send").status_code == 410
    assert anon.get(f"{path}/AuthTokenRequest.xml").status_code == 410
    assert _link_actions(store, "ksef.auth.success") == [f"link:{_link_id(store, client_company.id)}"]

    # The client's page stopped at the login; the office's page takes it from there.
    request_id = _attempt_id(store, client_company.id)
    with store.connect() as db:
        assert get_request(db, request_id).status == "authenticated"
    for _ in range(10):
        progress = web.get(f"/clients/{client_company.id}/wizard/attempts/{request_id}/progress", htmx=True)
        if progress.status_code == 286:
            break
    with store.connect() as db:
        assert get_request(db, request_id).status == "done"
    again = anon.get(f"{path}/status", htmx=True)
    assert again.status_code == 286 and _state(again) == "accepted"


def _link_id(store, client_id: int) -> int:
    with store.connect() as db:
        return db.execute("SELECT id FROM signing_links WHERE client_id = ?", [client_id]).fetchone()[0]


def test_a_refused_signature_is_explained_with_what_to_do(portal, store, client_company, sandbox_server):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    _send(anon, path, pesel="88102341294")  # a person without any permissions in the company
    answers = _poll(anon, path)
    assert _state(answers[-1]) == "refused"
    final = BeautifulSoup(answers[-1].get_data(as_text=True), "html.parser")
    assert "KSeF nie przyjął podpisu." in final.get_text()
    assert final.select_one("[data-ksef-code]")["data-ksef-code"] == "415"
    assert "Podpisujący nie ma w KSeF uprawnień do tej firmy." in final.get_text()
    assert "poproś biuro rachunkowe o nowy link" in final.get_text()
    assert "hx-trigger" not in str(final)
    assert _link_actions(store, "ksef.auth.failed") == [f"link:{_link_id(store, client_company.id)}"]
    challenges = len(sandbox_server.exchanges("/auth/challenge"))
    reopened = anon.get(path)  # no second try with a used link: a new one comes from the office
    assert reopened.status_code == 200 and "KSeF nie przyjął podpisu." in reopened.get_data(as_text=True)
    assert len(sandbox_server.exchanges("/auth/challenge")) == challenges


@pytest.mark.parametrize("fault", [{"kind": "error", "status": 503}, {"kind": "rate_limit"}, {"kind": "drop"}])
def test_ksef_not_answering_while_polling_keeps_the_page_asking(portal, store, client_company, sandbox_server,
                                                                 fault):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    _send(anon, path, nip=client_company.nip)
    sandbox_server.inject("GET /auth/{referenceNumber}", fault.pop("kind"), times=3, **fault)  # every retry
    waiting = anon.get(f"{path}/status", htmx=True)
    assert waiting.status_code == 200 and _state(waiting) == "checking"
    page = BeautifulSoup(waiting.get_data(as_text=True), "html.parser")
    assert page.select_one("[data-waiting]") is not None and "KSeF chwilowo nie odpowiada" in page.get_text()
    assert page.select_one("#link-status")["hx-trigger"] == "every 3s"
    assert _state(_poll(anon, path)[-1]) == "accepted"


def test_the_status_of_a_sealed_portal_asks_to_try_later(portal, store, client_company):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    _send(anon, path, nip=client_company.nip)
    store.seal()
    sealed = anon.get(f"{path}/status", htmx=True)  # htmx does not swap a 503: the page keeps asking
    assert sealed.status_code == 503 and "Spróbuj ponownie później" in sealed.get_data(as_text=True)
    assert client_company.name not in sealed.get_data(as_text=True)


def test_the_status_ends_with_the_window_after_the_use(portal, store, client_company):
    web, anon, clock = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    _send(anon, path, nip=client_company.nip)
    clock.offset = links.FOLLOW_WINDOW + timedelta(seconds=1)
    polled = anon.get(f"{path}/status", htmx=True)  # a page left open: the last answer stops the polling
    assert polled.status_code == 286 and _state(polled) == "gone"
    assert "Poproś biuro rachunkowe o nowy" in polled.get_data(as_text=True)
    assert client_company.name not in polled.get_data(as_text=True)
    assert anon.get(f"{path}/status").status_code == 410
    assert anon.get(path).status_code == 410
    assert anon.get(path.replace(path[-5:], "xxxxx") + "/status").status_code == 410


def test_status_polls_count_apart_from_the_page(portal, client_company):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    statuses = [anon.get(f"{path}/status", htmx=True).status_code for _ in range(31)]
    assert statuses[-1] == 429 and 429 not in statuses[:30]
    assert anon.get(path).status_code == 200  # following never uses up the page's own budget


def test_a_failure_of_the_office_s_part_after_the_login_is_not_shown_as_a_refused_signature(
        portal, store, client_company, sandbox_server):
    web, anon, _ = portal
    _turn_on(web)
    path = _link(web, client_company.id)
    _send(anon, path, nip=client_company.nip)
    assert _state(_poll(anon, path)[-1]) == "accepted"
    with store.write() as db:  # the office's grant cannot run without the office's NIP
        office.save_office(db, office.OfficeProfile(name="Biuro", nip="", ksef_environment="sandbox",
                                                    sandbox_url=sandbox_server.url), actor="admin", at=NOW)
    request_id = _attempt_id(store, client_company.id)
    web.get(f"/clients/{client_company.id}/wizard/attempts/{request_id}/progress", htmx=True)
    with store.connect() as db:
        assert get_request(db, request_id).status == "failed"
    still = anon.get(f"{path}/status", htmx=True)  # the client's signature was accepted; the rest is the office's
    assert still.status_code == 286 and _state(still) == "accepted"
    assert "Uzupełnij NIP biura" not in still.get_data(as_text=True)


def _attempt_id(store, client_id: int) -> int:
    with store.connect() as db:
        return db.execute("SELECT auth_request_id FROM signing_links WHERE client_id = ?", [client_id]).fetchone()[0]
