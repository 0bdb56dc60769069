"""Messages a user meets after a mistake (issue 9, items 9–14): in Polish, at a field the page shows, keeping
what was typed, and saying what to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from klucznik.certs import MAX_FILE_SIZE
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import users
from tests.support.badinput import body
from tests.support.badinput import refused
from tests.support.badinput import stored
from tests.support.defaults import ADMIN
from tests.support.defaults import NOW
from tests.support.web import WebClient
from tests.support.web import make_app


@pytest.fixture
def staff(app, store: Store) -> WebClient:  # noqa: ANN001
    users.create_user(store, username="ewa", role="staff", password="initial-password", actor=ADMIN, at=NOW)
    client = WebClient(app.test_client())
    client.login("ewa", "initial-password")
    client.post("/account/password", {"current_password": "initial-password", "new_password": "my-own-password-1",
                                       "new_password2": "my-own-password-1"})
    return client


@pytest.mark.parametrize("url", ["/office", "/admin/users", "/admin/audit"])
@pytest.mark.parametrize("htmx", [False, True])
def test_staff_meet_a_polish_403_that_names_the_administrator(staff: WebClient, url: str, htmx: bool) -> None:
    text = refused(staff.get(url, htmx=htmx), 403, "Potrzebny jest administrator", "tylko administrator")
    assert "Forbidden" not in text and "Odśwież" not in text


@pytest.mark.parametrize("url", ["/office", "/admin/users", f"/admin/users/{ADMIN}/remove"])
def test_staff_posts_to_admin_pages_are_403_in_polish(staff: WebClient, store: Store, url: str) -> None:
    before = stored(store)
    refused(staff.post(url, {"name": "Przejęte biuro", "nip": "5252955037", "ksef_environment": "test",
                             "username": "intruz", "role": "admin"}), 403, "Potrzebny jest administrator")
    assert stored(store) == before


# -- recovery code -----------------------------------------------------------------------------------------------


def _field(html: str, name: str):  # noqa: ANN202
    return BeautifulSoup(html, "html.parser").select_one(f"#field-{name}")


@pytest.mark.parametrize(
    ("code", "password", "field", "fragment"),
    [
        ("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG", "short", "new_password", "co najmniej 12 znaków"),
        ("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG", "reset-password-1", "code", "nie pasuje do tej instancji"),
        ("AAAA-BBBB", "reset-password-1", "code", "26 znaków"),
        ("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-99", "reset-password-1", "code", "liter A–Z i cyfr 2–7"),
        ("ĄĄĄĄ-BBBB-CCCC-DDDD-EEEE-FFFF-GG", "reset-password-1", "code", "liter A–Z i cyfr 2–7"),
        ("A" * 500, "reset-password-1", "code", "To nie jest kod odzyskiwania"),
    ],
)
def test_recovery_reset_keeps_the_code_and_shows_the_error_at_its_field(
    anon: WebClient, store: Store, code: str, password: str, field: str, fragment: str
) -> None:
    anon.get("/recover")
    before = stored(store)
    response = anon.post("/recover", {"username": ADMIN, "code": code, "new_password": password,
                                      "new_password2": password})
    refused(response, 422, fragment)
    shown = _field(body(response), field)
    assert shown is not None and fragment in shown.get_text(" "), body(response)[:3000]
    typed = _field(body(response), "code").select_one("input")
    if len(code) <= 64:
        assert typed["value"] == code  # what was typed stays
    assert _field(body(response), "username").select_one("input")["value"] == ADMIN
    assert stored(store) == before


def test_the_recovery_message_never_says_the_letter_o_is_absent(anon: WebClient, store: Store) -> None:
    anon.get("/recover")
    response = anon.post("/recover", {"username": ADMIN, "code": "OOOO-OOOO-OOOO-OOOO-OOOO-OOOO-OO",
                                      "new_password": "reset-password-1", "new_password2": "reset-password-1"})
    text = refused(response, 422, "liter A–Z i cyfr 2–7")
    assert "litery O" not in text and "się nie zdarzają" not in text


def test_a_recovery_code_typed_with_look_alike_digits_works(anon: WebClient, store: Store) -> None:
    code = store.recovery_code  # type: ignore[attr-defined]
    typed = code.replace("O", "0").replace("I", "1").replace("B", "8").lower()
    anon.get("/recover")
    response = anon.post("/recover", {"username": ADMIN, "code": typed, "new_password": "reset-password-1",
                                      "new_password2": "reset-password-1"})
    assert response.status_code == 303


# -- setup -------------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WebClient, Store]:
    path = tmp_path / "instance"
    monkeypatch.setenv("KLUCZNIK_INSTANCE", str(path))
    store = Store(path, kdf=TEST_KDF)
    return WebClient(make_app(store).test_client()), store


@pytest.mark.parametrize(
    ("username", "password", "password2", "expected"),
    [
        ("Anna Kowalska", "short", "other", {"username", "password", "password2"}),
        ("ąę", "short", "short", {"username", "password"}),
        ("a", "a long password 1", "a long password 2", {"username", "password2"}),
        ("anna", "short", "shorter", {"password", "password2"}),
        ("x" * 5000, "p" * 2000, "p" * 2000, {"username", "password"}),
        ("", "", "", {"username", "password"}),
    ],
)
def test_setup_shows_every_error_at_once(fresh: tuple[WebClient, Store], username: str, password: str,
                                         password2: str, expected: set[str]) -> None:
    client, store = fresh
    client.get("/setup")
    response = client.post("/setup", {"username": username, "password": password, "password2": password2})
    refused(response, 422)
    html = BeautifulSoup(body(response), "html.parser")
    invalid = {node["id"].removeprefix("field-") for node in html.select(".field.invalid")}
    assert invalid == expected
    assert store.state() == "new" and not store.path.exists()
    if "username" not in expected:
        assert html.select_one("#username")["value"] == username


def test_setup_login_name_help_and_error_agree(fresh: tuple[WebClient, Store]) -> None:
    client, _store = fresh
    client.get("/setup")
    response = client.post("/setup", {"username": "Ąnna", "password": "a long password 1",
                                      "password2": "a long password 1"})
    html = BeautifulSoup(body(response), "html.parser")
    help_text = html.select_one("#field-username .help").get_text()
    error = html.select_one("#field-username .error").get_text()
    for rule in ("2–32 znaki", "małe litery bez polskich znaków", "cyfry", "kropka", "myślnik", "podkreślenie"):
        assert rule in help_text and rule in error, rule


# -- file too large ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_FILE_SIZE + 1, MAX_FILE_SIZE * 3, MAX_FILE_SIZE * 6])
@pytest.mark.parametrize("field", ["online_crt", "online_key", "offline_crt", "offline_key"])
def test_file_too_large_states_the_limit_not_a_size(web: WebClient, store: Store, client_company, size: int,  # noqa: ANN001
                                                    field: str) -> None:
    before = stored(store)
    response = web.post(f"/clients/{client_company.id}/certificates/upload", {"nip": client_company.nip},
                        files={field: (b"A" * size, "duzy.crt")})
    text = refused(response, 422, "większy niż 64 KiB")
    assert f"{size // 1024} KiB" not in text.replace("64 KiB", "")
    assert stored(store) == before


# -- Polish wording (item 14) ------------------------------------------------------------------------------------


def test_the_wizard_names_the_company_in_quotes(web: WebClient, client_company) -> None:  # noqa: ANN001
    page = BeautifulSoup(body(web.get(f"/clients/{client_company.id}/wizard")), "html.parser")
    assert page.select_one("h1").get_text() == f"Połącz firmę „{client_company.name}” z KSeF"
    assert "123" not in page.get_text() or "-" in page.get_text()


WORDING = {
    "Who signed:": "Kto podpisał:",
    "Connect the company “%(name)s” to KSeF": "Połącz firmę „%(name)s” z KSeF",
}
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_wizard_wording(web: WebClient) -> None:
    """The wizard's Polish: "Kto podpisał:" everywhere, "otaczany", a notice that starts "Uwaga:"."""
    from flask_babel import force_locale
    from flask_babel import gettext

    sources = "\n".join(p.read_text("utf-8") for p in TEMPLATES.rglob("*.html"))
    assert '"Signed by:"' not in sources and "To be honest" not in sources and "otoczony" not in sources
    with web.client.application.test_request_context(), force_locale("pl"):
        for msgid, polish in WORDING.items():
            assert msgid in sources and gettext(msgid) == polish
        notices = [gettext(m) for m in ("Please note: the Minister of Finance's regulation of 12 December 2025 "
                   "allowed Profil Zaufany for logging in to KSeF only until 31 March 2026, and it has failed at "
                   "times. The KSeF documentation still lists it, so it may or may not be accepted now. If KSeF "
                   "refuses the file, use a qualified signature or seal, or method 3.",)]
        assert notices[0].startswith("Uwaga: ")
