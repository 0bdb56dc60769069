"""'Wyślij e-mailem' for a one-time signing link, against a real local SMTP server (aiosmtpd): the client's address
prefilled and editable, the e-mail carries exactly the link shown, the sending is audited, and plain Polish errors
when mail is not configured, the server refuses, the address is wrong or the link no longer works."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik.records import smtp
from tests.support.defaults import NOW
from tests.support.smtp import PASSWORD
from tests.support.smtp import USER
from tests.support.smtp import smtp_server

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def made(app, web, store, client_company):
    clock = {"now": NOW}
    app.config["KLUCZNIK_CLOCK"] = lambda: clock["now"]
    turned_on = web.post("/office/links", {"enabled": "1", "public_url": "https://portal.biuro.test"})
    assert turned_on.status_code in (200, 303), turned_on.get_data(as_text=True)
    response = web.post(f"/clients/{client_company.id}/links", {"method": "grant"}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return {"url": html.select_one("#link-url")["value"], "html": html, "clock": clock}


def _configure(store, port: int, **overrides) -> None:
    values = {"host": "127.0.0.1", "port": port, "security": "none", "username": USER, "password": PASSWORD,
              "sender": "portal@biuro.test", "recipients": ("ksiegowa@biuro.test",)}
    with store.write() as db:
        smtp.save_smtp(db, smtp.SmtpSettings(**{**values, **overrides}), actor="admin", at=NOW)


def _send(web, client_id: int, made, recipient: str):
    form = made["html"].select_one("#link-email form")
    token = form.select_one("input[name=token]")["value"]
    return web.post(form["action"], {"token": token, "recipient": recipient}, htmx=True)


def _audit(store) -> list[dict]:
    with store.connect() as db:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT details FROM audit_log WHERE action = 'link.email' ORDER BY id")]


def test_the_link_is_sent_to_the_clients_address(web, store, client_company, made) -> None:
    field = made["html"].select_one("#link-recipient")
    assert field["value"] == "biuro@przyklad.pl" and not field.has_attr("readonly")  # prefilled, editable
    assert "Wyślij e-mailem" in made["html"].get_text()
    with smtp_server(auth=True) as box:
        _configure(store, box.port)
        response = _send(web, client_company.id, made, "ksiegowosc@przyklad.pl")  # the office changed it
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Link został wysłany na adres ksiegowosc@przyklad.pl" in response.get_data(as_text=True)
    [(sender, recipients, message)] = box.messages
    assert (sender, recipients) == ("portal@biuro.test", ["ksiegowosc@przyklad.pl"])  # not the office's list
    body = message.get_content()
    assert made["url"] in body.split() and client_company.nip in body
    assert "Link jest jednorazowy" in body and "Przykładowa Spółka z o.o." in message["Subject"]
    [entry] = _audit(store)
    assert entry["recipient"] == "ksiegowosc@przyklad.pl" and entry["ok"] is True


def test_mail_not_configured_says_so_and_keeps_the_link(web, store, client_company, made) -> None:
    response = _send(web, client_company.id, made, "biuro@przyklad.pl")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Poczta nie jest skonfigurowana" in page and "Skopiuj link" in page
    assert 'value="biuro@przyklad.pl"' in page  # the form stays, to try again
    assert _audit(store)[-1] == {"link_id": 1, "recipient": "biuro@przyklad.pl", "ok": False,
                                 "error": "mail_not_configured"}


def test_a_refusing_server_is_reported_plainly(web, store, client_company, made) -> None:
    with smtp_server(auth=True) as box:
        _configure(store, box.port, password="zle-haslo")
        response = _send(web, client_company.id, made, "biuro@przyklad.pl")
    assert response.status_code == 422
    assert "Serwer poczty odrzucił login lub hasło" in response.get_data(as_text=True)
    assert box.messages == [] and _audit(store)[-1]["error"] == "mail_auth"


def test_a_wrong_address_and_a_dead_link_are_refused(web, store, client_company, made) -> None:
    with smtp_server() as box:
        _configure(store, box.port, username="", password="")
        wrong = _send(web, client_company.id, made, "biuro@przyklad")
        assert wrong.status_code == 422 and "poprawny adres e-mail" in wrong.get_data(as_text=True)
        made["clock"]["now"] = NOW + timedelta(days=8)  # the link expired
        dead = _send(web, client_company.id, made, "biuro@przyklad.pl")
        assert dead.status_code == 422 and "Utwórz nowy link" in dead.get_data(as_text=True)
        forged = web.post(f"/clients/{client_company.id}/links/email", {"token": "x" * 43,
                                                                        "recipient": "biuro@przyklad.pl"}, htmx=True)
        assert forged.status_code == 422 and "Utwórz nowy link" in forged.get_data(as_text=True)
    assert box.messages == []
    assert [(e["link_id"], e["error"]) for e in _audit(store)] == [
        (1, "recipient_invalid"), (None, "link_gone"), (None, "link_gone")]
