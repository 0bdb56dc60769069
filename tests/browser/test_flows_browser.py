"""Issue 9 in a real browser: from "Dodaj autoryzację" along the step bar of method 3 with the online pair only.

The online pair is the real KSeF TEST seal certificate with its encrypted key (``tests/data/certs``); its
company is the portal's client 2 (NIP 685-233-29-48). No offline pair is chosen: the page says what the
client will lack and stores the online pair alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.conftest import PageProblems
from tests.browser.test_cert_upload_browser import choose
from tests.browser.test_cert_upload_browser import expect_state
from tests.browser.test_cert_upload_browser import type_in
from tests.support.certificates import sample

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "certs"
SEAL = sample("seal")


def steps(page: Page):  # noqa: ANN201
    return page.locator("#step-bar li")


def expect_current_step(page: Page, number: int, label: str) -> None:
    current = page.locator("#step-bar li[aria-current=step]")
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-step", str(number))
    expect(current).to_have_text(re.compile(rf"^\s*Krok {number}:\s*{re.escape(label)}\s*$"))


def test_method_3_step_bar_with_the_online_pair_only(signed_in: Page, problems: PageProblems) -> None:
    page = signed_in
    # "Dodaj autoryzację" starts from a NIP; a client the office has goes straight to step 1.
    page.get_by_role("link", name="Dodaj autoryzację").click()
    page.get_by_label("NIP").fill("685 233 29 48")
    page.get_by_role("button", name="Dalej").click()
    expect(page).to_have_url(re.compile(r"/clients/2/wizard$"))
    expect_current_step(page, 1, "Wybierz sposób autoryzacji")

    page.get_by_role("link", name="Przejdź do formularza wgrywania").click()
    expect(page).to_have_url(re.compile(r"/clients/2/certificates/upload$"))
    expect(steps(page)).to_have_count(3)
    expect(steps(page).nth(0)).to_have_class("done")
    expect_current_step(page, 2, "Wybierz pliki i wpisz hasła")
    expect(steps(page).nth(2)).to_have_text(re.compile(r"Krok 3:\s*Wgraj certyfikaty"))
    submit = page.get_by_role("button", name="Wgraj pliki")
    missing = page.locator("#upload-missing")
    expect(submit).to_be_disabled()
    expect(missing.locator("[data-list=to-fill] li")).to_have_text(
        ["certyfikat uwierzytelniający (.crt)", "klucz prywatny certyfikatu uwierzytelniającego (.key)"]
    )

    choose(page, "#online_crt", SAMPLES / "mf-test-seal-authentication.crt")
    expect(missing.locator("[data-list=to-fill] li")).to_have_text(
        ["klucz prywatny certyfikatu uwierzytelniającego (.key)"]
    )
    choose(page, "#online_key", SAMPLES / "mf-test-seal-authentication.key")
    expect(missing.locator("[data-list=to-fill] li")).to_have_text(["hasło klucza uwierzytelniającego"])
    expect_current_step(page, 2, "Wybierz pliki i wpisz hasła")
    expect(submit).to_be_disabled()

    type_in(page, "#online_password", "zle-haslo-123")
    expect(missing.locator("[data-list=to-fix] li")).to_have_text(["hasło klucza uwierzytelniającego"])
    expect(submit).to_be_disabled()

    type_in(page, "#online_password", SEAL.password)
    for target in ("online-crt", "online-key", "online-password", "nip"):
        expect_state(page, target, "ok")
    expect(submit).to_be_enabled()
    expect(missing.locator("li")).to_have_count(0)
    expect(page.locator("[data-notice=offline-later]")).to_contain_text("trybie offline")
    expect_current_step(page, 3, "Wgraj certyfikaty")
    expect(steps(page).nth(1)).to_have_class("done")

    submit.click()
    expect(page).to_have_url(re.compile(r"/clients/2$"))
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td")).to_contain_text(["Uwierzytelnianie (online)", SEAL.serial])
    expect(page.locator("[data-notice=offline-missing]")).to_contain_text("nie może wystawiać faktur w trybie offline")
    assert problems.seen() == []
