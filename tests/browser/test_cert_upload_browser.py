"""Method 3 in a real browser: upload a client's KSeF certificates, every field checked as it is filled.

The online pair is the real KSeF TEST seal certificate with its encrypted key (``tests/data/certs``).
KSeF TEST samples of the Offline type do not exist, so the offline pair is built for the same company
with ``tests.support.certificates`` (its key encrypted like the taxpayer application does) and written to
files, which the test chooses in the file inputs as a person would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.conftest import PageProblems
from tests.support.certificates import OTHER_NIP
from tests.support.certificates import PASSWORD
from tests.support.certificates import cert_pem
from tests.support.certificates import certificate
from tests.support.certificates import ec_key
from tests.support.certificates import key_like_taxpayer_app
from tests.support.certificates import sample

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "certs"
SEAL = sample("seal")
OFFLINE_SERIAL = 0x4B4C55435A4E494B
WRONG_PASSWORD = (
    "Hasło nie pasuje do tego klucza. Sprawdź wielkość liter i układ klawiatury; to hasło ustawiono "
    "przy wnioskowaniu o certyfikat i KSeF nie może go odzyskać."
)


@pytest.fixture(scope="module")
def offline_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An Offline certificate of the seal's company (NIP 685-233-29-48) and its key, as two files."""
    folder = tmp_path_factory.mktemp("offline")
    key = ec_key("browser-offline")
    crt_path, key_path = folder / "pieczec (offline).crt", folder / "pieczec (offline).key"
    crt_path.write_bytes(
        cert_pem(certificate(key=key, ksef_type="Offline", nip=OTHER_NIP, serial=OFFLINE_SERIAL))
    )
    key_path.write_bytes(key_like_taxpayer_app(key))
    return crt_path, key_path


def status(page: Page, target: str) -> Locator:
    return page.locator(f"#status-{target}")


def expect_state(page: Page, target: str, state: str) -> None:
    expect(status(page, target)).to_have_class(f"cert-status cert-{state}")


def answered(page: Page, action: Callable[[], None]) -> None:
    """Fill a field and wait until the page shows its inline check, as a person reads it before going on.

    Waiting matters: every answer also replaces the other fields' statuses out of band, so an answer to
    a check sent while an earlier one was still running lands in a status element the earlier answer has
    already replaced, and the field keeps the earlier (stale) verdict.
    """
    with page.expect_response(re.compile(r"/certificates/check/")):
        action()
    expect(page.locator(".htmx-request")).to_have_count(0)


def choose(page: Page, selector: str, path: Path) -> None:
    answered(page, lambda: page.locator(selector).set_input_files(path))


def type_in(page: Page, selector: str, text: str) -> None:
    """Type into a field and leave it with Tab (the ``change`` event starts the check at once)."""

    def action() -> None:
        page.locator(selector).fill(text)
        page.locator(selector).press("Tab")

    answered(page, action)


def test_upload_both_pairs_with_every_field_checked_inline(
    signed_in: Page, problems: PageProblems, offline_pair: tuple[Path, Path]
) -> None:
    page = signed_in
    page.get_by_role("link", name="Onbeald Elward Caspian Inc.").click()
    page.get_by_role("link", name="Wgraj certyfikaty klienta").click()
    expect(page).to_have_url(re.compile(r"/clients/2/certificates/upload$"))
    submit = page.get_by_role("button", name="Wgraj pliki")
    expect(submit).to_be_disabled()
    expect(page.get_by_label("NIP firmy")).to_have_value("685-233-29-48")  # the client's NIP to start with

    # Online: the real seal certificate is described; its key asks for the password.
    choose(page, "#online_crt", SAMPLES / "mf-test-seal-authentication.crt")
    expect(status(page, "online-crt").locator("dd")).to_have_text(
        [
            "Onbeald Elward Caspian Inc. O (NIP 685-233-29-48)",
            "Uwierzytelnianie (online)",
            SEAL.serial,
            "2028-03-06",
        ]
    )
    expect_state(page, "online-crt", "ok")
    choose(page, "#online_key", SAMPLES / "mf-test-seal-authentication.key")
    expect(status(page, "online-password").locator("p.error")).to_have_text(
        "Klucz prywatny jest zaszyfrowany: wpisz hasło ustawione przy wnioskowaniu o certyfikat w Aplikacji "
        "Podatnika KSeF."
    )
    expect(status(page, "online-key").locator("dd")).to_have_text(
        ["zabezpieczony hasłem: wpisz hasło poniżej"]
    )
    type_in(page, "#online_password", "test!@#123testaaaa")  # Caps Lock the wrong way round
    expect(status(page, "online-password").locator("p.error")).to_have_text(WRONG_PASSWORD)
    type_in(page, "#online_password", SEAL.password)
    expect(status(page, "online-password").locator("dd")).to_have_text(["poprawne: klucz się otwiera"])
    expect(status(page, "online-key").locator("dd")).to_have_text(
        ["klucz EC P-256 zabezpieczony hasłem", "klucz pasuje do tego certyfikatu"]
    )
    for target in ("online-crt", "online-key", "online-password"):
        expect_state(page, target, "ok")
    expect(submit).to_be_enabled()  # the online pair alone is enough: the offline one can follow later
    expect(page.locator("[data-notice=offline-later]")).to_contain_text("KOD II")

    # Offline: the online certificate is refused there; the built Offline pair is taken.
    choose(page, "#offline_crt", SAMPLES / "mf-test-seal-authentication.crt")
    expect(status(page, "offline-crt").locator("p.error")).to_have_text(
        "To jest certyfikat online — wgraj go w sekcji „Certyfikat uwierzytelniania (online)”. "
        "Tutaj potrzebny jest certyfikat offline."
    )
    offline_crt, offline_key = offline_pair
    choose(page, "#offline_crt", offline_crt)
    expect(status(page, "offline-crt").locator("dd")).to_have_text(
        [
            "Przykładowa Spółka z o.o. (NIP 685-233-29-48)",
            "Offline (weryfikacja wystawcy)",
            f"{OFFLINE_SERIAL:X}",
            "2028-02-21",
        ]
    )
    choose(page, "#offline_key", offline_key)
    type_in(page, "#offline_password", PASSWORD)
    for target in ("offline-crt", "offline-key", "offline-password", "nip"):
        expect_state(page, target, "ok")
    expect(submit).to_be_enabled()

    # Another company's NIP: refused at the NIP field and at both certificates; the button goes off.
    type_in(page, "#nip", "526-104-08-28")
    expect(status(page, "nip").locator("p.error")).to_have_text(
        "Wpisany NIP 526-104-08-28 nie jest NIP-em tego klienta (685-233-29-48). Pliki wgrywasz dla tego klienta: "
        "wpisz jego NIP albo przejdź do właściwego klienta."
    )
    for target in ("online-crt", "offline-crt"):
        expect(status(page, target).locator("p.error")).to_have_text(
            "Certyfikat jest wystawiony dla NIP 685-233-29-48, a firma ma NIP 526-104-08-28. Wgraj certyfikat tej "
            "firmy albo popraw NIP."
        )
    expect(submit).to_be_disabled()
    type_in(page, "#nip", "6852332948")
    expect(status(page, "nip").locator("dd")).to_have_text(["685-233-29-48"])
    for target in (
        "online-crt",
        "online-key",
        "online-password",
        "offline-crt",
        "offline-key",
        "offline-password",
    ):
        expect_state(page, target, "ok")
    expect(submit).to_be_enabled()

    # The final submit checks everything again and stores both pairs.
    submit.click()
    expect(page).to_have_url(re.compile(r"/clients/2$"))
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Uwierzytelnianie (online)").locator("td")).to_contain_text(
        ["Uwierzytelnianie (online)", SEAL.serial, "2028-03-06", "w użyciu", "admin"]
    )
    expect(rows.filter(has_text="Offline (weryfikacja wystawcy)").locator("td")).to_contain_text(
        ["Offline (weryfikacja wystawcy)", f"{OFFLINE_SERIAL:X}", "2028-02-21", "w użyciu", "admin"]
    )
    expect(page.locator("dl.facts")).to_contain_text("Certyfikaty wgrane przez użytkownika")
    assert problems.seen() == []
