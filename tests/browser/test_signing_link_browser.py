"""The client's signing-link page in Debian's chromium: sealed first ("try later"), then the page in Polish, the
file named after the NIP and date, the upload with the pre-check and its warning, sending, the page following
the attempt by itself (htmx polling) from "KSeF is checking" to KSeF's answer and then stopping, and the used
link showing that answer instead of a new file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect
from werkzeug.serving import make_server

import sandbox
from klucznik.authorize import links
from klucznik.clock import utcnow
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import office
from sandbox import ca
from sandbox import signer
from sandbox.state import Config
from sandbox.state import Identity
from tests.browser.conftest import ROOT
from tests.browser.conftest import log_in
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW

OTHER = "7792433527"


@pytest.fixture(scope="module")
def ksef_sandbox() -> Iterator[Any]:
    app = sandbox.create_app({"TESTING": True, "SANDBOX_CONFIG": Config(), "SANDBOX_SEED": 7})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/v2"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def link_portal(tmp_path_factory: pytest.TempPathFactory, ksef_sandbox) -> Iterator[tuple[str, str]]:
    """The real portal (waitress, a child process) for the sandbox, with links on and one link for the client."""
    _, sandbox_url = ksef_sandbox
    instance = tmp_path_factory.mktemp("links") / "instance"
    store = Store(instance, kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    with store.write() as db:
        office.save_office(db, office.OfficeProfile("Biuro Test", "5252955037", "sandbox", sandbox_url),
                           actor=ADMIN, at=NOW)
        links.save_settings(db, enabled=True, public_url="https://portal.biuro.test", actor=ADMIN, ip=None, at=NOW)
        client = clients.create_client(db, clients.validate(nip=CLIENT_NIP, name="Żabka Księgowa Sp. z o.o."),
                                       actor=ADMIN, at=NOW)
        _, url = links.create_link(db, client_id=client.id, method="grant", actor=ADMIN, ip=None,
                                   at=utcnow())
    env = {name: value for name, value in os.environ.items() if not name.startswith("KLUCZNIK_")}
    env["KLUCZNIK_INSTANCE"] = str(instance)
    server = subprocess.Popen([sys.executable, "-m", "tests.browser.serve_links"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        address = server.stdout.readline().decode().strip()
        assert address.startswith("http://"), "the portal did not start"
        yield address, url.removeprefix("https://portal.biuro.test")
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any], link_portal) -> dict[str, Any]:
    return {**browser_context_args, "base_url": link_portal[0], "locale": "pl-PL", "accept_downloads": True}


def test_the_client_link_page(page: Page, problems, link_portal, ksef_sandbox) -> None:
    problems.expected_statuses |= {503}
    path = link_portal[1]
    page.goto(path)  # the portal was just started: sealed
    expect(page.get_by_role("heading", name="Portal jest chwilowo niedostępny")).to_be_visible()

    log_in(page)  # the office logs in: the portal is unsealed
    # The client has no account and no session. Leave the office's page first: a poll of it answered after
    # the cookies are gone sends the browser to the login page, which would cut the next navigation short.
    page.goto("about:blank")
    page.context.clear_cookies()
    page.goto(path)
    expect(page.get_by_role("heading", name="Podpis pliku dla KSeF")).to_be_visible()
    expect(page.get_by_text("Żabka Księgowa Sp. z o.o.")).to_be_visible()
    download = page.locator("#download")
    name = download.get_attribute("download")
    assert re.fullmatch(rf"AuthTokenRequest-{CLIENT_NIP}-\d{{8}}\.xml", name)
    with page.expect_download() as info:
        download.click()
    with open(info.value.path(), "rb") as downloaded:
        unsigned = downloaded.read()
    assert info.value.suggested_filename == name and f"<Nip>{CLIENT_NIP}</Nip>".encode() in unsigned

    app, _ = ksef_sandbox
    sandbox.state_of(app).add_test_permissions(CLIENT_NIP, Identity("Nip", OTHER), ["CredentialsManage"])
    certificate, key = ca.qualified_identity(nip=OTHER)
    signed = signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped")
    page.locator("#signed").set_input_files({"name": "podpisany.xml", "mimeType": "application/xml", "buffer": signed})
    page.get_by_role("button", name="Sprawdź plik").click()
    expect(page.get_by_text("Plik jest poprawnie podpisany.")).to_be_visible()
    expect(page.locator("[data-warning=signer]")).to_contain_text("inna firma (NIP 7792433527)")
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/status") else None)
    page.get_by_role("button", name="Wyślij do KSeF").click()
    expect(page.locator("#sent")).to_contain_text("przekazany do KSeF")
    status = page.locator("#link-status")
    expect(status).to_have_attribute("data-state", "checking")
    expect(status).to_contain_text("KSeF sprawdza podpis")
    sent_url = page.url

    # Nobody touches the page: htmx asks every 3 s until KSeF answered, swaps the answer in and stops.
    expect(status).to_have_attribute("data-state", "accepted", timeout=20_000)
    expect(status).to_contain_text("KSeF przyjął podpis.")
    expect(page.get_by_role("progressbar")).to_have_count(0)
    assert page.url == sent_url and len(polls) >= 2  # swapped in place, after at least one "still checking"
    asked = len(polls)
    page.wait_for_timeout(4_000)
    assert len(polls) == asked  # the final answer stopped the polling

    page.goto(path)  # one use only: opened again, the page shows how it went, never a new file
    expect(page.locator("#link-status")).to_contain_text("KSeF przyjął podpis.")
    expect(page.locator("#download")).to_have_count(0)
    assert problems.seen() == []
