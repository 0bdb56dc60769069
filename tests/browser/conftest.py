"""Browser tests: pytest-playwright driving Debian's chromium, and the real portal under waitress.

Playwright never downloads a browser here: ``browser_type_launch_args`` points it at the system
``chromium`` (``.ci/run`` installs Debian's package). Without it the browser tests are skipped
locally, but fail under ``CI=true``. The flags are what a headless root container needs; the
machine's network is closed, so Chromium's background connections are switched off too.

The portal runs as a child process (``tests.browser.serve``) over a set-up instance, one per test
module. Every test watches its page with :class:`PageProblems` and asserts that the browser
reported no console error, uncaught exception or Content-Security-Policy violation.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import ConsoleMessage
from playwright.sync_api import Page
from playwright.sync_api import expect

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.certificates import OTHER_NIP
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import CLIENT_NIP
from tests.support.defaults import NOW

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: How Chromium reports an HTTP error answer on the console.
_HTTP_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})\b")
#: Reports every Content-Security-Policy violation of every page to the test (see ``PageProblems``).
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"} `
                        + `at ${event.sourceFile}:${event.lineNumber}`);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API leaves its event loop marked as running in the main thread from the first
    browser test to the end of the session (pytest-playwright keeps it session-wide), where it would
    make any later ``asyncio.run()`` of another test fail.
    """
    items.sort(key=lambda item: item.path.is_relative_to(HERE))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium (never a downloaded browser) with the flags of a headless root container."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Debian's chromium for the browser tests (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@contextlib.contextmanager
def running_portal(instance: Path, module: str = "tests.browser.serve") -> Iterator[str]:
    """Start ``python -m module`` (the portal under waitress over ``instance``, no KLUCZNIK_ settings of this
    shell) and give its address; its stderr goes to portal.log beside the instance; stopped on exit."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KLUCZNIK_")}
    env["KLUCZNIK_INSTANCE"] = str(instance)
    log = instance.parent / "portal.log"
    with log.open("wb") as output:
        server = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=output)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().decode().strip()
        if not url.startswith("http://"):
            pytest.fail(f"the portal did not start: {log.read_text('utf-8', 'replace')[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of the real portal under waitress over a set-up instance (cheap KDF) with two clients.

    Client 1 is a company with no certificate among the samples; client 2 is the company of the real
    KSeF TEST seal certificate (``tests.support.certificates.sample("seal")``).
    """
    instance = tmp_path_factory.mktemp("browser") / "instance"
    store = Store(instance, kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    with store.write() as db:
        for nip, name in (
            (CLIENT_NIP, "Żabka Księgowa Sp. z o.o."),
            (OTHER_NIP, "Onbeald Elward Caspian Inc."),
        ):
            clients.create_client(db, clients.validate(nip=nip, name=name), actor=ADMIN, at=NOW)
    with running_portal(instance) as url:
        yield url


@pytest.fixture(scope="session")
def base_url() -> None:
    """No fixed address: each module starts its own portal (see ``browser_context_args``).

    This also replaces pytest-playwright's fallback ``base_url`` (used without pytest-base-url), a
    session-scoped fixture defined as an instance method, which pytest 9 deprecates with a warning
    that the suite's ``filterwarnings = error`` would turn into an error.
    """
    return None


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any], portal: str) -> dict[str, Any]:
    """Relative addresses go to this module's portal; Polish, as the office uses it."""
    return {**browser_context_args, "base_url": portal, "locale": "pl-PL"}


@dataclass
class PageProblems:
    """What the browser reported as wrong on one page: console errors, uncaught exceptions, CSP violations."""

    page: Page
    #: HTTP answers that are not faults: 422 is the portal's answer to a form or inline check with errors.
    expected_statuses: set[int] = field(default_factory=lambda: {422})
    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, context: BrowserContext, page: Page) -> PageProblems:
        problems = cls(page)
        context.expose_binding("__cspViolation", lambda _source, text: problems.csp.append(text))
        context.add_init_script(_CSP_LISTENER)
        page.on("console", problems._on_console)
        page.on("pageerror", lambda error: problems.exceptions.append(str(error)))
        return problems

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        status = _HTTP_ERROR.match(message.text)
        if status is None or int(status.group(1)) not in self.expected_statuses:
            self.console.append(f"{message.text} ({message.location.get('url')})")

    def seen(self) -> list[str]:
        """Everything reported so far, once the reports the page has already queued have arrived."""
        self.page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 50))")
        return self.console + self.exceptions + self.csp


@pytest.fixture
def problems(context: BrowserContext, page: Page) -> PageProblems:
    """Console errors, uncaught exceptions and CSP violations of ``page`` (every test asserts none)."""
    return PageProblems.watch(context, page)


def log_in(page: Page, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    """Log in through the login form; the portal lands on its start page (the status page: there are clients)."""
    page.goto("/login")
    page.get_by_label("Login", exact=True).fill(username)
    page.get_by_label("Hasło", exact=True).fill(password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(re.compile(r"/$"))


@pytest.fixture
def signed_in(page: Page, problems: PageProblems) -> Page:
    """``page`` logged in as the administrator (through the form, as a person does), on the clients list."""
    log_in(page)
    page.get_by_role("link", name="Klienci", exact=True).click()
    expect(page).to_have_url(re.compile(r"/clients$"))
    return page
