"""The status page's live checks through the web against the sandbox: "Sprawdź teraz" for one client (its KSeF
statuses, a revoked certificate raising the banner), and "Sprawdź wszystkich" with its progress bar and cancel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from klucznik.ksef.transport import RetryPolicy
from sandbox.state import Identity
from tests.support.status import add_client
from tests.support.status import enroll_in_sandbox


@pytest.fixture
def portal(app, web, store, client_company, sandbox_server, sandbox_office):
    app.config["KLUCZNIK_CLOCK"] = sandbox_server.state.now
    app.config["KLUCZNIK_POLL_INTERVAL"] = 0.0
    app.config["KSEF_CLIENT_OPTIONS"] = {
        "retries": RetryPolicy(attempts=2, backoff=0.0, rate_limit_attempts=1, max_retry_after=1),
        "sleep": lambda seconds: None, "clock": sandbox_server.state.now, "timeout": (2.0, 5.0)}
    serials = enroll_in_sandbox(sandbox_server, store, client_company.id, client_company.nip,
                                at=sandbox_server.state.now())
    return web, client_company, sandbox_server, serials


def test_check_now_records_the_ksef_statuses(portal) -> None:
    web, company, server, serials = portal
    response = web.post(f"/status/clients/{company.id}/check")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/status/clients/{company.id}")
    page = web.get(f"/status/clients/{company.id}").get_data(as_text=True)
    assert page.count("aktywny w KSeF") == 2 and "działa" in page
    table = web.get("/status").get_data(as_text=True)
    assert "status w KSeF jeszcze nie sprawdzony" not in table and "aktywny w KSeF" in table


def test_a_revoked_certificate_fails_the_check_and_raises_the_banner(portal) -> None:
    web, company, server, serials = portal
    server.state.revoke_certificate(Identity("Nip", company.nip), serials["Offline"])
    web.post(f"/status/clients/{company.id}/check")
    page = web.get(f"/status/clients/{company.id}").get_data(as_text=True)
    assert "unieważniony w KSeF" in page and "nie działa" in page
    banner = web.get("/clients").get_data(as_text=True)
    assert "1 klient nie przeszedł ostatniego sprawdzenia w KSeF." in banner
    assert "status.check" in web.get("/admin/audit").get_data(as_text=True)


def test_a_certificate_shortened_in_ksef_shows_as_expiring_after_check_now(portal) -> None:
    """KSeF ends a certificate earlier than its file says (the sandbox's PUT /testdata/certificates/{serial}):
    the portal learns it at the next live check, and the table, the client's page and the banner say so."""
    web, company, server, serials = portal
    assert "status-banner" not in web.get("/clients").get_data(as_text=True)  # both valid for a year or more
    now = server.state.now().replace(microsecond=0)
    ksef = server.login(company.nip)
    soon = now + timedelta(days=5, hours=6)
    ksef.testdata.shorten_certificate(serials["Authentication"], valid_to=soon)
    ksef.testdata.shorten_certificate(serials["Offline"], valid_to=now + timedelta(days=20, hours=6))
    ksef.revoke_current()
    assert "zostało 5 dni" not in web.get("/status").get_data(as_text=True)  # not known before a check
    assert web.post(f"/status/clients/{company.id}/check").status_code == 303
    table = web.get("/status").get_data(as_text=True)
    assert "zostało 5 dni" in table and "band-urgent" in table
    assert "zostało 20 dni" in table and "band-soon" in table
    assert table.count("aktywny w KSeF") == 2  # still active: shortened, not revoked
    page = web.get(f"/status/clients/{company.id}").get_data(as_text=True)
    row = re.search(r'<tr class="band-urgent">.*?</tr>', page, re.S)
    assert row is not None and serials["Authentication"] in row.group(0)
    assert soon.strftime("%d.%m.%Y") in row.group(0) and "<td>5</td>" in row.group(0)
    assert "działa" in page
    banner = re.search(r'<p class="status-banner".*?</p>', web.get("/clients").get_data(as_text=True), re.S)
    assert banner is not None and "1 klient ma certyfikat wygasający w ciągu 30 dni." in banner.group(0)
    assert company.name in web.get("/status?show=expiring").get_data(as_text=True)


def test_check_all_shows_progress_and_ends(portal, store) -> None:
    web, company, server, _ = portal
    with store.write() as db:
        add_client(db, "7740001454", "Druga firma", method="user_certs", at=server.state.now())
    assert "Sprawdź wszystkich" in web.get("/status").get_data(as_text=True)
    assert web.post("/status/jobs").status_code == 303
    manager = web.client.application.extensions["klucznik.status_jobs"]
    running = web.get("/status/jobs/progress", htmx=True).get_data(as_text=True)
    assert 'id="job"' in running
    for job_id in list(manager._threads):
        manager.wait(job_id)
    done = web.get("/status/jobs/progress", htmx=True).get_data(as_text=True)
    assert "sprawdzono 2, z błędem 1" in done and "hx-trigger" not in done  # polling stops
    assert "Brak zapisanego certyfikatu" in web.get("/status?show=errors").get_data(as_text=True)


def test_cancel_button_stops_the_job(portal, store) -> None:
    web, company, server, _ = portal
    server.inject("POST /auth/challenge", "slow", delay=0.5, times=None)
    web.post("/status/jobs")
    manager = web.client.application.extensions["klucznik.status_jobs"]
    (job_id,) = list(manager._threads)
    assert "Anuluj" in web.get("/status/jobs/progress").get_data(as_text=True)
    web.post(f"/status/jobs/{job_id}/cancel")
    manager.wait(job_id)
    assert "anulowano" in web.get("/status/jobs/progress").get_data(as_text=True)
