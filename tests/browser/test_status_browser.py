"""In a real browser: the status page as the start page, KSeF's availability, the htmx filters, a client's SVG
timeline, "Sprawdź teraz" and "Sprawdź wszystkich" against the sandbox — with no console error or CSP violation."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect
from werkzeug.serving import make_server

import sandbox
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import office
from sandbox.state import Config
from tests.browser.conftest import PageProblems
from tests.browser.conftest import log_in
from tests.browser.conftest import running_portal
from tests.fixtures.sandbox import OFFICE_NIP
from tests.fixtures.sandbox import ContractRecorder
from tests.fixtures.sandbox import SandboxServer
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.status import add_client
from tests.support.status import enroll_in_sandbox


@pytest.fixture(scope="module")
def ksef_sandbox() -> Iterator[SandboxServer]:
    app = sandbox.create_app({"TESTING": True, "SANDBOX_CONFIG": Config(), "SANDBOX_SEED": 1234})
    recorder = ContractRecorder(app.wsgi_app)
    app.wsgi_app = recorder
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SandboxServer(app, "127.0.0.1", server.server_port, recorder)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, ksef_sandbox: SandboxServer) -> Iterator[str]:
    """The portal under waitress, its office on the sandbox, two clients with certificates the sandbox issued."""
    instance = tmp_path_factory.mktemp("status-browser") / "instance"
    store = Store(instance, kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    at = ksef_sandbox.state.now()
    with store.write() as db:
        office.save_office(db, office.OfficeProfile(name="Biuro Rachunkowe Test", nip=OFFICE_NIP,
                                                    ksef_environment="sandbox", sandbox_url=ksef_sandbox.url),
                           actor=ADMIN, at=at)
        ids = [add_client(db, "5261040828", "Żabka Księgowa Sp. z o.o.", at=at),
               add_client(db, "7740001454", "Kwiaciarnia Róża s.c.", at=at)]
    for client_id, nip in zip(ids, ("5261040828", "7740001454"), strict=True):
        enroll_in_sandbox(ksef_sandbox, store, client_id, nip, at=at)
    store.seal()
    with running_portal(instance, "tests.browser.serve_status") as url:
        yield url


def test_status_page_checks_and_filters(page: Page, problems: PageProblems, ksef_sandbox: SandboxServer) -> None:
    log_in(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Status KSeF")
    expect(page.locator("#availability h2")).to_have_text("KSeF jest dostępny", timeout=15000)
    rows = page.locator("#status-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("status w KSeF jeszcze nie sprawdzony")

    page.get_by_label("Pokaż").select_option("expiring")
    expect(page).to_have_url(re.compile(r"show=expiring"))
    expect(page.locator("#status-table .empty")).to_have_text("Żaden klient nie pasuje do tych filtrów.")
    page.get_by_label("Pokaż").select_option("")
    expect(rows).to_have_count(2)
    page.get_by_role("searchbox").fill("kwiaciarnia")
    expect(rows).to_have_count(1)

    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kwiaciarnia Róża s.c.")
    expect(page.locator("svg.timeline rect.bar")).to_have_count(2)
    expect(page.locator("svg.timeline line.today")).to_have_count(1)
    page.get_by_role("button", name="Sprawdź teraz").click()
    expect(page.locator("table.list").first).to_contain_text("aktywny w KSeF", timeout=30000)
    expect(page.get_by_text("działa").first).to_be_visible()

    page.get_by_role("link", name="Status KSeF", exact=True).click()
    page.get_by_role("button", name="Sprawdź wszystkich").click()
    expect(page.locator("#job")).to_contain_text("Ostatnie sprawdzenie wszystkich klientów zakończono", timeout=60000)
    expect(page.get_by_text("status w KSeF jeszcze nie sprawdzony")).to_have_count(0, timeout=10000)
    assert problems.seen() == []
