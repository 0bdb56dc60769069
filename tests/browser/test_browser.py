"""End to end in a real browser: htmx under the CSP, live search, the inline certificate check.

This proves what the Flask test client cannot: htmx 2 loads and works under the CSP
``default-src 'self'`` (no inline script or style is needed), live search swaps rows, the inline
certificate check answers a real file chosen in a file input, and the browser reports no console error
or CSP violation (the last test shows that such a report would be caught).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect

from tests.browser.conftest import PageProblems

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "certs"


def test_live_search_swaps_rows_under_the_csp(signed_in: Page, problems: PageProblems) -> None:
    page = signed_in
    assert page.evaluate("htmx.version").startswith("2.")
    page.evaluate("window.sameDocument = true")  # gone if the search reloaded the page instead of swapping
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_role("searchbox").fill("nic-takiego")
    expect(page.locator("#results")).to_have_text("Żaden klient nie pasuje do „nic-takiego”.")
    expect(page).to_have_url(re.compile(r"/clients\?q=nic-takiego$"))  # hx-push-url
    page.get_by_role("searchbox").fill("żabka")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(
        ["Żabka Księgowa Sp. z o.o.", "526-104-08-28", "", "Jeszcze niepodłączony"]
    )
    expect(page).to_have_url(re.compile(r"/clients\?q=%C5%BCabka$"))
    assert page.evaluate("window.sameDocument") is True
    assert problems.seen() == []


def test_inline_certificate_check_answers_the_chosen_file(signed_in: Page, problems: PageProblems) -> None:
    page = signed_in
    page.goto("/clients/1/certificates/upload")
    submit = page.get_by_role("button", name="Wgraj pliki")
    expect(submit).to_be_disabled()
    # The real TEST Authentication certificate, chosen in the offline section: the wrong slot, and the
    # NIP read from the file is not this client's (the form starts with the client's NIP).
    wrong_slot = (
        "To jest certyfikat online — wgraj go w sekcji „Certyfikat uwierzytelniania (online)”. "
        "Tutaj potrzebny jest certyfikat offline."
    )
    other_nip = (
        "Certyfikat jest wystawiony dla NIP 579-595-58-11, a firma ma NIP 526-104-08-28. "
        "Wgraj certyfikat tej firmy albo popraw NIP."
    )
    page.locator("#offline_crt").set_input_files(SAMPLES / "mf-test-authentication.crt")
    expect(page.locator("#status-offline-crt")).to_have_class("cert-status cert-error")
    expect(page.locator("#status-offline-crt p.error")).to_have_text([wrong_slot, other_nip])
    expect(page.locator("#status-online-crt")).to_have_class("cert-status cert-empty")
    # The same file in its own section: only the NIP is wrong there.
    page.locator("#online_crt").set_input_files(SAMPLES / "mf-test-authentication.crt")
    expect(page.locator("#status-online-crt p.error")).to_have_text([other_nip])
    expect(page.locator("#status-offline-crt p.error")).to_have_text([wrong_slot, other_nip])
    expect(submit).to_be_disabled()
    assert problems.seen() == []


def test_the_problem_watch_sees_console_errors_exceptions_and_csp_violations(
    page: Page, problems: PageProblems
) -> None:
    """The guard of every other test: a page that breaks the CSP and throws is reported, a 422 is not."""

    def serve(route: Route) -> None:
        if route.request.url.endswith("/probe.js"):
            body = (
                "console.error('probe failed');"
                "fetch('/form').then(() => fetch('/broken'))"
                ".then(() => { throw new Error('probe exception'); });"
            )
            route.fulfill(body=body, content_type="text/javascript")
        elif route.request.url.endswith("/form"):
            route.fulfill(status=422, body="invalid")
        elif route.request.url.endswith("/broken"):
            route.fulfill(status=500, body="broken")
        else:
            route.fulfill(
                body='<p style="color: red">probe</p><script src="/probe.js"></script>',
                content_type="text/html",
                headers={"Content-Security-Policy": "default-src 'self'"},
            )

    page.route("http://probe.invalid/**", serve)
    with page.expect_event("pageerror"):
        page.goto("http://probe.invalid/")
    seen = problems.seen()
    assert problems.exceptions == ["probe exception"]
    assert [text for text in problems.csp if text.startswith("style-src-attr blocked inline")], seen
    assert [text for text in problems.console if text.startswith("probe failed")], seen
    assert [text for text in problems.console if "Content Security Policy directive" in text], seen
    assert [text for text in problems.console if "status of 500" in text], seen
    assert not [text for text in seen if "422" in text], seen
