"""End to end in a real browser: the portal under waitress, driven through headless Chromium (CDP).

This proves what the Flask test client cannot: htmx 2 loads and works under the CSP
``default-src 'self'`` (no inline script or style is needed), live search swaps rows, the inline
certificate check answers a real file chosen in a file input, and the browser reports no console error
or CSP violation. Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); without
it the tests are skipped locally, but fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "certs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
websocket = pytest.importorskip("websocket")

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs Debian's chromium for the browser tests (.ci/run installs it)")
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Browser:
    """A minimal Chrome DevTools Protocol client: navigate, evaluate, set files, collect errors."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=20)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "DOM"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def js(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript failed: {expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 10) -> object:
        deadline = time.monotonic() + seconds
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.1)

    def go(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && typeof htmx !== 'undefined'")

    def set_file(self, selector: str, path: Path) -> None:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def errors(self) -> list[str]:
        """Console errors, exceptions and CSP violations seen so far (4xx answers htmx swaps are expected)."""
        self.ws.settimeout(0.3)
        try:
            while True:
                self.events.append(json.loads(self.ws.recv()))
        except (websocket.WebSocketTimeoutException, TimeoutError):
            pass
        finally:
            self.ws.settimeout(20)
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(params)[:300])
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args"))[:300])
            elif event.get("method") == "Log.entryAdded":
                entry = params.get("entry", {})
                text = entry.get("text", "")
                if entry.get("level") == "error" and "status of 422" not in text:
                    found.append(text)
        return found


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory):
    """The real portal (``klucznik serve``) over a set-up instance with one client."""
    instance = tmp_path_factory.mktemp("browser") / "instance"
    store = Store(instance, kdf=TEST_KDF)
    store.setup("admin", "admin-password-1", at=NOW)
    with store.write() as db:
        clients.create_client(db, clients.validate(nip="5261040828", name="Żabka Księgowa Sp. z o.o."), actor="admin", at=NOW)
    port = _free_port()
    env = {**os.environ, "KLUCZNIK_INSTANCE": str(instance), "KLUCZNIK_PORT": str(port)}
    server = subprocess.Popen([str(Path(sys.executable).with_name("klucznik")), "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def browser(portal: str, tmp_path: Path):
    port = _free_port()
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome'}", f"--remote-debugging-port={port}", "--window-size=1280,900",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/json/version")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        client = Browser(page["webSocketDebuggerUrl"])
        client.go(f"{portal}/login")
        client.js("document.querySelector('#username').value = 'admin';"
                  "document.querySelector('#password').value = 'admin-password-1';"
                  "document.querySelector('main form').submit(); true")
        client.wait_for("location.pathname === '/clients'")
        client.wait_for("document.readyState === 'complete'")
        yield client
        client.ws.close()
    finally:
        process.kill()
        process.wait(10)


def test_live_search_swaps_rows_under_the_csp(browser: Browser, portal: str) -> None:
    browser.go(f"{portal}/clients")
    assert browser.js("document.querySelector('#results').innerText").count("Żabka") == 1
    browser.js("{ const q = document.querySelector('#q'); q.value = 'nic-takiego';"
               "q.dispatchEvent(new Event('input', {bubbles: true})); } true")
    browser.wait_for("document.querySelector('#results').innerText.includes('nic-takiego')")
    assert "q=nic-takiego" in str(browser.js("location.search"))  # hx-push-url
    browser.js("{ const q = document.querySelector('#q'); q.value = 'żabka';"
               "q.dispatchEvent(new Event('input', {bubbles: true})); } true")
    browser.wait_for("document.querySelector('#results').innerText.includes('526-104-08-28')")
    assert browser.errors() == []


def test_inline_certificate_check_answers_the_chosen_file(browser: Browser, portal: str) -> None:
    browser.go(f"{portal}/clients/1/certificates/upload")
    # The real TEST Authentication certificate, chosen in the offline section: the wrong slot.
    browser.set_file("#offline_crt", SAMPLES / "mf-test-authentication.crt")
    browser.wait_for("document.body.innerText.includes('To jest certyfikat online')")
    assert browser.js("document.querySelector('#upload-submit').disabled") is True
    # The same file in its own section: a green summary naming the identity and the KSeF type.
    browser.set_file("#online_crt", SAMPLES / "mf-test-authentication.crt")
    browser.wait_for("document.body.innerText.includes('579-595-58-11')")
    assert browser.errors() == []
