"""The access log (issue 9, item 23): one line per request on stderr, with the method, the path without query
values, the status, the time taken and the user; never a password, a query value, a cookie or a forged line.
"""

from __future__ import annotations

import re

import pytest

from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.web import WebClient

LINE = re.compile(
    r'^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<ip>\S+) (?P<user>\S+) "(?P<method>[A-Z]+) (?P<path>\S+)" '
    r"(?P<status>\d{3}) (?P<ms>\d+\.\d) ms$"
)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    err = capsys.readouterr().err.splitlines()
    parsed = [LINE.match(line) for line in err]
    assert all(parsed), err
    return [m.groupdict() for m in parsed if m]


def test_one_line_per_request_with_user_status_and_time(anon: WebClient, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    anon.get("/login")
    anon.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
    anon.get("/clients?q=Kowalski%20sp.&page=2")
    anon.get("/no-such-page")
    logged = lines(capsys)
    assert [(e["method"], e["path"], e["status"], e["user"]) for e in logged] == [
        ("GET", "/login", "200", "-"),
        ("POST", "/login", "303", "-"),
        ("GET", "/clients?q=&page=", "200", ADMIN),
        ("GET", "/no-such-page", "404", ADMIN),
    ]
    assert all(float(e["ms"]) >= 0 and e["ip"] == "127.0.0.1" for e in logged)


def test_never_a_secret_or_a_forged_line(anon: WebClient, capsys: pytest.CaptureFixture[str]) -> None:
    anon.get("/login")
    capsys.readouterr()
    secret = "Tajne-Haslo-123"
    anon.post("/login?next=/clients%0d%0aFAKE%20200", {"username": ADMIN, "password": secret})
    anon.get(f"/clients?token={secret}")
    anon.get("/clients/%0aFAKE-LINE")
    err = capsys.readouterr().err
    assert secret not in err and "csrf" not in err.lower() and "klucznik=" not in err
    assert len(err.splitlines()) == 3
    assert not any(line.startswith("FAKE") for line in err.splitlines())
    assert "/clients/%0AFAKE-LINE" in err


def test_the_access_log_can_be_switched_off(store, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from tests.support.web import make_app

    client = WebClient(make_app(store, KLUCZNIK_ACCESS_LOG=False).test_client())
    capsys.readouterr()
    client.get("/login")
    assert capsys.readouterr().err == ""
