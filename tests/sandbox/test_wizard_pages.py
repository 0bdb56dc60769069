"""The connection wizard in the browser (Flask test client) against the real sandbox on loopback.

The whole flow of method 1 up to stored tokens and the office's grant; method 2 up to stored certificates;
an expired challenge, a signature KSeF refuses, and a sandbox that answers 503 once.
"""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup

from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import get_request
from klucznik.authorize.session import active_tokens
from klucznik.ksef.transport import RetryPolicy
from sandbox import ca
from sandbox import signer
from tests.fixtures.sandbox import OFFICE_NIP
from tests.support.defaults import NOW

PESEL = "88102341294"


class Clock:
    """The portal's clock: the sandbox's time plus an offset the test moves."""

    def __init__(self, server) -> None:
        self.server = server
        self.offset = timedelta()

    def __call__(self):
        return self.server.state.now() + self.offset


@pytest.fixture
def wiz(app, web, store, client_company, sandbox_server, sandbox_office):
    """The portal wired to the sandbox: office settings, a pinned clock and a KSeF client that never sleeps."""
    clock = Clock(sandbox_server)
    app.config["KLUCZNIK_CLOCK"] = clock
    app.config["KSEF_CLIENT_OPTIONS"] = {
        "retries": RetryPolicy(attempts=3, backoff=0.0, rate_limit_attempts=2, max_retry_after=1),
        "sleep": lambda seconds: None,
        "clock": sandbox_server.state.now,
        "timeout": (2.0, 5.0),
    }

    class Wizard:
        def __init__(self) -> None:
            self.web, self.store, self.company, self.server, self.clock = (
                web,
                store,
                client_company,
                sandbox_server,
                clock,
            )
            self.base = f"/clients/{client_company.id}/wizard"

        def new_attempt(self, slug: str = "grant") -> AuthRequest:
            assert self.web.get(f"{self.base}/{slug}").status_code == 200  # the page with the button
            response = self.web.post(f"{self.base}/{slug}/new")
            assert response.status_code == 303, response.get_data(as_text=True)
            request_id = int(re.search(r"/attempts/(\d+)\?download=1$", response.headers["Location"]).group(1))
            with self.store.connect() as db:
                return get_request(db, request_id)

        def url(self, attempt: AuthRequest, action: str = "") -> str:
            return f"{self.base}/attempts/{attempt.id}" + (f"/{action}" if action else "")

        def download(self, attempt: AuthRequest) -> bytes:
            response = self.web.get(self.url(attempt, "AuthTokenRequest.xml"))
            assert response.status_code == 200
            day = attempt.created_at.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%d")
            expected = f"attachment; filename=AuthTokenRequest-{self.company.nip}-{day}.xml"
            assert response.headers["Content-Disposition"] == expected
            assert response.mimetype == "application/xml"
            return response.get_data()

        def upload(self, attempt, data: bytes, *, htmx: bool = True, name: str = "AuthTokenRequest (1).xml"):
            return self.web.post(self.url(attempt, "upload"), files={"signed": (data, name)}, htmx=htmx)

        def submit(self, attempt, *, htmx: bool = True):
            return self.web.post(self.url(attempt, "submit"), htmx=htmx)

        def follow(self, attempt, *, limit: int = 30):
            """Poll the progress like htmx does, until the 286 that stops polling."""
            for _ in range(limit):
                response = self.web.get(self.url(attempt, "progress"), htmx=True)
                assert response.status_code in (200, 286), response.get_data(as_text=True)
                if response.status_code == 286:
                    return response
                if 'id="enroll-review"' in response.get_data(as_text=True) and "enroll/confirm" in (
                    response.get_data(as_text=True)
                ):  # method 2 shows the limits first and waits: go ahead with the defaults
                    confirmed = self.web.post(self.url(attempt, "enroll/confirm"), htmx=True)
                    assert confirmed.status_code == 200 and confirmed.headers.get("HX-Redirect")
                    continue
                assert 'hx-trigger="load delay:1s"' in response.get_data(as_text=True)
            raise AssertionError("the progress never finished")

    return Wizard()


def sign(data: bytes, *, nip=None, pesel=None, style="enveloped") -> bytes:
    certificate, key = ca.qualified_identity(nip=nip, pesel=pesel)
    return signer.sign(data, certificate=certificate, private_key=key, style=style)


def text(response) -> str:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser").get_text(" ", strip=True)


def test_step_1_offers_three_methods(wiz):
    response = wiz.web.get(wiz.base)
    assert response.status_code == 200
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    assert len(soup.select("section.method")) == 3
    hrefs = [a["href"] for a in soup.select("section.method a")]
    assert f"{wiz.base}/grant" in hrefs and f"{wiz.base}/certificates" in hrefs
    assert f"/clients/{wiz.company.id}/certificates/upload" in hrefs
    assert "style=" not in response.get_data(as_text=True) and "<script>" not in response.get_data(
        as_text=True
    )


def test_method_1_whole_flow_up_to_stored_tokens_and_grant(wiz):
    page = wiz.web.get(f"{wiz.base}/grant")
    assert page.status_code == 200 and "profil" in text(page).lower()
    attempt = wiz.new_attempt()
    page = wiz.web.get(wiz.url(attempt))
    body = page.get_data(as_text=True)
    assert f'href="{wiz.url(attempt, "AuthTokenRequest.xml")}"' in body
    assert "10 min" in text(page)  # how long the file stays valid
    unsigned = wiz.download(attempt)
    assert unsigned == attempt.unsigned_xml
    assert f"<Nip>{wiz.company.nip}</Nip>".encode() in unsigned

    signed = sign(unsigned, nip=wiz.company.nip)
    checked = wiz.upload(attempt, signed)
    assert checked.status_code == 200
    shown = text(checked)
    assert wiz.company.nip in shown  # who signed: the company's NIP (a seal), before anything is sent
    assert wiz.server.exchanges("/auth/xades-signature") == []
    assert f'hx-post="{wiz.url(attempt, "submit")}"' in checked.get_data(as_text=True)

    sent = wiz.submit(attempt)
    assert sent.status_code == 200
    assert 'hx-trigger="load delay:1s"' in sent.get_data(as_text=True)
    assert wiz.server.exchanges("/auth/xades-signature")[-1].body == signed  # the original bytes

    final = wiz.follow(attempt)
    assert "hx-trigger" not in final.get_data(as_text=True)
    with wiz.store.connect() as db:
        tokens = active_tokens(db, wiz.company.id)
        row = db.execute("SELECT context_nip FROM ksef_tokens WHERE status = 'active'").fetchone()
        done = get_request(db, attempt.id)
    assert tokens is not None and row == (wiz.company.nip,)
    assert done.status == "done"
    shown = tokens.refresh_token.valid_until.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%d %H:%M")
    assert shown in text(final)  # the stored result is shown, in Polish time
    grants = {g.scope for g in wiz.server.state.grants.values() if g.subject_nip == OFFICE_NIP}
    assert grants == {"InvoiceRead", "InvoiceWrite"}


def test_method_2_flow_stores_generated_certificates(wiz):
    attempt = wiz.new_attempt("certificates")
    assert wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip)).status_code == 200
    wiz.submit(attempt)
    final = wiz.follow(attempt)
    with wiz.store.connect() as db:
        rows = db.execute("SELECT slot, origin, status, serial FROM credentials ORDER BY slot").fetchall()
    assert [r[:3] for r in rows] == [("offline", "generated", "active"), ("online", "generated", "active")]
    for row in rows:  # the stored result is shown
        assert row[3] in text(final)


def test_profil_zaufany_file_shows_the_person_with_masked_pesel(wiz):
    wiz.server.seed_owner(nip=wiz.company.nip, pesel=PESEL)
    attempt = wiz.new_attempt()
    checked = wiz.upload(attempt, sign(wiz.download(attempt), pesel=PESEL, style="profil-zaufany"))
    assert checked.status_code == 200
    shown = text(checked)
    assert "*******1294" in shown and PESEL not in shown
    wiz.submit(attempt)
    assert wiz.follow(attempt).status_code == 286


def test_unsigned_upload_is_explained_in_polish(wiz):
    attempt = wiz.new_attempt()
    response = wiz.upload(attempt, wiz.download(attempt))
    assert response.status_code == 422
    assert "Plik nie zawiera podpisu." in text(response)
    assert 'data-code="not_signed"' in response.get_data(as_text=True)


def test_upload_without_htmx_renders_the_whole_page(wiz):
    attempt = wiz.new_attempt()
    response = wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip), htmx=False)
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
    sent = wiz.submit(attempt, htmx=False)
    assert sent.status_code == 200 and 'id="progress"' in sent.get_data(as_text=True)


def test_expired_challenge(wiz):
    attempt = wiz.new_attempt()
    signed = sign(wiz.download(attempt), nip=wiz.company.nip)
    wiz.clock.offset = timedelta(minutes=10, seconds=1)
    validity = wiz.web.get(wiz.url(attempt, "validity"), htmx=True)
    assert validity.status_code == 286  # stops the countdown polling
    assert "hx-get" not in validity.get_data(as_text=True)
    response = wiz.upload(attempt, signed)
    assert response.status_code == 422
    assert "Minęło ponad 10 minut od pobrania pliku" in text(response)
    page = wiz.web.get(wiz.url(attempt))
    assert f'action="{wiz.base}/grant/new"' in page.get_data(as_text=True)  # a new file is offered
    assert wiz.server.exchanges("/auth/xades-signature") == []


def test_signature_the_sandbox_rejects(wiz):
    attempt = wiz.new_attempt()
    checked = wiz.upload(attempt, sign(wiz.download(attempt), pesel=PESEL))  # a person without permissions
    assert checked.status_code == 200
    wiz.submit(attempt)
    final = wiz.follow(attempt)
    body = final.get_data(as_text=True)
    assert 'data-ksef-code="415"' in body
    assert "Podpisujący nie ma w KSeF uprawnień do tej firmy." in text(final)
    assert f'action="{wiz.base}/grant/new"' in body
    with wiz.store.connect() as db:
        assert active_tokens(db, wiz.company.id) is None


def test_sandbox_answers_503_once(wiz):
    attempt = wiz.new_attempt()
    wiz.upload(attempt, sign(wiz.download(attempt), nip=wiz.company.nip))
    wiz.server.inject("POST /auth/xades-signature", "error", status=503, times=1)
    first = wiz.submit(attempt)
    assert first.status_code == 200
    assert f'hx-post="{wiz.url(attempt, "submit")}"' in first.get_data(as_text=True)  # the button again
    assert "KSeF" in text(first)
    second = wiz.submit(attempt)
    assert 'id="progress"' in second.get_data(as_text=True)
    wiz.follow(attempt)
    with wiz.store.connect() as db:
        assert active_tokens(db, wiz.company.id) is not None


def test_challenge_unavailable_is_explained(wiz):
    wiz.web.get(f"{wiz.base}/grant")
    wiz.server.inject("POST /auth/challenge", "error", status=503, times=10)
    response = wiz.web.post(f"{wiz.base}/grant/new")
    assert response.status_code == 503
    assert "alert" in response.get_data(as_text=True)


def test_another_clients_attempt_is_not_reachable(wiz, store):
    from klucznik.records import clients

    attempt = wiz.new_attempt()
    with store.write() as db:
        other = clients.create_client(
            db, clients.validate(nip="7792433527", name="Inna Firma"), actor="admin", at=NOW
        )
    response = wiz.web.get(f"/clients/{other.id}/wizard/attempts/{attempt.id}/AuthTokenRequest.xml")
    assert response.status_code == 404


def _no_inline_code(body: str) -> None:
    soup = BeautifulSoup(body, "html.parser")
    assert not soup.select("[style]")
    assert not [s for s in soup.find_all("script") if not s.get("src")]
    assert not [t for t in soup.find_all(True) if any(a.startswith(("on", "hx-on")) for a in t.attrs)]
    assert not soup.find_all("style")


def test_no_inline_script_or_style_on_any_wizard_page(wiz):
    bodies = [
        wiz.web.get(wiz.base).get_data(as_text=True),
        wiz.web.get(f"{wiz.base}/grant").get_data(as_text=True),
    ]
    attempt = wiz.new_attempt()
    bodies.append(wiz.web.get(wiz.url(attempt)).get_data(as_text=True))
    bodies.append(wiz.web.get(wiz.url(attempt, "validity"), htmx=True).get_data(as_text=True))
    signed = sign(wiz.download(attempt), nip=wiz.company.nip)
    bodies.append(wiz.upload(attempt, b"not xml").get_data(as_text=True))
    bodies.append(wiz.upload(attempt, signed).get_data(as_text=True))
    bodies.append(wiz.submit(attempt).get_data(as_text=True))
    bodies.append(wiz.follow(attempt).get_data(as_text=True))
    bodies.append(wiz.web.get(wiz.url(attempt)).get_data(as_text=True))
    for body in bodies:
        _no_inline_code(body)


def test_problems_are_shown_in_english_when_chosen(wiz):
    attempt = wiz.new_attempt()
    wiz.web.post("/language", {"lang": "en", "next": "/"})
    response = wiz.upload(attempt, wiz.download(attempt))
    assert response.status_code == 422
    assert "The file is not signed." in text(response)
    assert "Plik nie zawiera podpisu" not in text(response)
