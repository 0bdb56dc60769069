"""In a real browser: log in, see the clients list, add a client (an error shown at its field, then success)."""

from __future__ import annotations

import re

from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.conftest import PageProblems
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD


def test_log_in_then_add_a_client(page: Page, problems: PageProblems) -> None:
    page.goto("/clients")
    expect(page).to_have_url(re.compile(r"/login\?next=/clients"))
    page.get_by_label("Login", exact=True).fill(ADMIN)
    page.get_by_label("Hasło", exact=True).fill("not-the-password")
    problems.expected_statuses.add(401)  # the answer to a failed login
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Nieprawidłowy login lub hasło. Sprawdź, czy nie jest włączony Caps Lock."
    )
    page.get_by_label("Hasło", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Zaloguj się").click()

    expect(page).to_have_url(re.compile(r"/clients$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Klienci")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)

    page.get_by_role("link", name="Dodaj klienta").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dodaj klienta")
    page.get_by_label("NIP").fill("774-000-14-55")  # one digit off
    page.get_by_label("Nazwa firmy").fill("Kwiaciarnia Róża s.c.")
    page.get_by_label("E-mail kontaktowy").fill("biuro@kwiaciarnia-roza.pl")
    page.get_by_role("button", name="Zapisz").click()
    # The error stands at its field; what was typed is kept.
    expect(page.locator("#nip-error")).to_have_text(
        "Ten NIP ma błędną cyfrę kontrolną: sprawdź go z dokumentem firmy."
    )
    expect(page.get_by_label("NIP")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("NIP")).to_have_attribute("aria-describedby", "nip-error")
    expect(page.locator(".field.invalid")).to_have_count(1)
    expect(page.get_by_label("Nazwa firmy")).to_have_value("Kwiaciarnia Róża s.c.")
    expect(page.get_by_label("E-mail kontaktowy")).to_have_value("biuro@kwiaciarnia-roza.pl")

    # A NIP that is already a client's is refused the same way.
    page.get_by_label("NIP").fill("5261040828")
    page.get_by_role("button", name="Zapisz").click()
    expect(page.locator("#nip-error")).to_have_text(
        "Klient z NIP 526-104-08-28 już istnieje (sprawdź też archiwum)."
    )

    page.get_by_label("NIP").fill("PL 774-000-14-54")
    page.get_by_role("button", name="Zapisz").click()
    expect(page).to_have_url(re.compile(r"/clients/3$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Kwiaciarnia Róża s.c.")
    facts = page.locator("dl.facts dd")
    expect(facts).to_have_text(["774-000-14-54", "biuro@kwiaciarnia-roza.pl", "Jeszcze niepodłączony"])

    page.get_by_role("navigation").get_by_role("link", name="Klienci").click()
    expect(rows).to_have_count(3)
    page.get_by_role("searchbox").fill("róża")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(
        ["Kwiaciarnia Róża s.c.", "774-000-14-54", "biuro@kwiaciarnia-roza.pl", "Jeszcze niepodłączony"]
    )
    assert problems.seen() == []
