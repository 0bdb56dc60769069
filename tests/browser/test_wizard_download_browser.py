"""Issue 9 items 18 and 19 in a real browser against the sandbox: "Pobierz plik XML" is one click (the page moves
to the attempt and the file named after the NIP and the date downloads), and after "Gotowe" the page offers
neither the file nor its minutes left."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from klucznik.records import office
from sandbox import ca
from sandbox import signer
from tests.browser.conftest import PageProblems
from tests.browser.conftest import log_in
from tests.browser.conftest import running_portal
from tests.browser.test_status_browser import ksef_sandbox  # noqa: F401 - the module's sandbox
from tests.fixtures.sandbox import OFFICE_NIP
from tests.fixtures.sandbox import SandboxServer
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, ksef_sandbox: SandboxServer) -> Iterator[str]:  # noqa: F811
    """The portal under waitress on the real clock, its office on the sandbox, one client."""
    instance = tmp_path_factory.mktemp("wizard-browser") / "instance"
    store = Store(instance, kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    at = ksef_sandbox.state.now()
    with store.write() as db:
        office.save_office(db, office.OfficeProfile(name="Biuro Rachunkowe Test", nip=OFFICE_NIP,
                                                    ksef_environment="sandbox", sandbox_url=ksef_sandbox.url),
                           actor=ADMIN, at=at)
        clients.create_client(db, clients.validate(nip=CLIENT_NIP, name="Żabka Księgowa Sp. z o.o."),
                              actor=ADMIN, at=at)
    store.seal()
    with running_portal(instance, "tests.browser.serve_status") as url:
        yield url


def test_one_click_download_then_nothing_stale_after_done(
    page: Page, problems: PageProblems, tmp_path: Path, ksef_sandbox: SandboxServer  # noqa: F811
) -> None:
    log_in(page)
    page.goto("/clients/1/wizard/certificates")
    expect(page.locator("#step-bar li[aria-current=step]")).to_have_attribute("data-step", "2")
    button = page.get_by_role("button", name="Pobierz plik XML")
    expect(button).to_have_count(1)
    with page.expect_download() as info:
        button.click()  # one click: the attempt's page opens and the file downloads
    download = info.value
    day = ksef_sandbox.state.now().astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%d")
    assert download.suggested_filename == f"AuthTokenRequest-{CLIENT_NIP}-{day}.xml"
    expect(page).to_have_url(re.compile(r"/wizard/attempts/\d+\?download=1$"))
    unsigned = Path(download.path()).read_bytes()
    assert f"<Nip>{CLIENT_NIP}</Nip>".encode() in unsigned
    expect(page.get_by_role("button", name="Pobierz plik XML")).to_have_count(0)
    expect(page.get_by_role("link", name="Pobierz plik ponownie")).to_be_visible()
    expect(page.locator("#validity")).to_contain_text("min")
    expect(page.locator("#step-bar li[aria-current=step]")).to_have_attribute("data-step", "3")

    certificate, key = ca.qualified_identity(nip=CLIENT_NIP)
    signed = tmp_path / "AuthTokenRequest (1).xml"
    signed.write_bytes(signer.sign(unsigned, certificate=certificate, private_key=key, style="enveloped"))
    page.locator("#signed").set_input_files(signed)
    send = page.get_by_role("button", name="Wyślij do KSeF")
    expect(send).to_be_visible()
    expect(page.locator("#step-bar li[aria-current=step]")).to_have_attribute("data-step", "4")
    send.click()
    obtain = page.get_by_role("button", name="Uzyskaj dwa certyfikaty")  # method 2 asks before it enrolls
    expect(obtain).to_be_visible(timeout=30000)
    obtain.click()
    expect(page.locator("#progress")).to_have_attribute("data-status", "done", timeout=30000)
    # after "Gotowe": every step done, no file offered, no minutes left (without a reload)
    expect(page.locator("#step-bar li.done")).to_have_count(4)
    section = page.locator("#step-download")
    expect(section).to_contain_text("Nowy plik nie jest potrzebny")
    expect(section.locator("a[download], form")).to_have_count(0)
    expect(page.locator("#validity")).to_be_hidden()
    expect(page.get_by_text(re.compile("zostało ok"))).to_have_count(0)
    assert problems.seen() == []
