"""One-time signing links against the real sandbox: off by default, the client's page (fresh challenge, file named
after the NIP and date, upload with the pre-check and its warning, send), one use, expiry, sealed, throttled."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik.authorize.requests import get_request
from klucznik.ksef.transport import RetryPolicy
from sandbox import ca
from sandbox import signer


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
    web, anon, _ = portal
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
    again = anon.get(path)  # one successful use
    assert again.status_code == 410 and "Poproś biuro rachunkowe o nowy" in again.get_data(as_text=True)
    with store.connect() as db:
        request_id = db.execute("SELECT auth_request_id FROM signing_links").fetchone()[0]
        assert get_request(db, request_id).status == "submitted"
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE actor LIKE 'link:%'")]
    assert {"link.open", "ksef.auth.upload", "ksef.auth.submit", "link.used"} <= set(actions)


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
