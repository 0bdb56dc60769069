"""Administration in the web: users (add, remove, last admin), staff limits (403), audit log and filters, office."""

from __future__ import annotations

import re
import threading

import pytest
from bs4 import BeautifulSoup

from klucznik.instance.store import Store
from klucznik.records import office
from klucznik.records import users
from tests.support.defaults import ADMIN
from tests.support.defaults import NOW
from tests.support.instances import dump
from tests.support.web import WebClient


def text(response) -> str:  # noqa: ANN001
    return response.get_data(as_text=True)


def audit_rows(response) -> list[dict[str, str]]:  # noqa: ANN001
    soup = BeautifulSoup(text(response), "html.parser")
    out = []
    for tr in soup.select("table.list tbody tr"):
        cells = [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        out.append(
            {
                "at": cells[0],
                "actor": cells[1],
                "action": tr["data-action"],
                "what": cells[2],
                "object": cells[3],
                "details": cells[4],
                "ip": cells[5],
            }
        )
    return out


def staff_client(app, store: Store, username: str = "ewa") -> WebClient:  # noqa: ANN001
    users.create_user(store, username=username, role="staff", password="initial-password", actor=ADMIN, at=NOW)
    client = WebClient(app.test_client())
    client.login(username, "initial-password")
    response = client.post(
        "/account/password",
        {
            "current_password": "initial-password",
            "new_password": "my-own-password-1",
            "new_password2": "my-own-password-1",
        },
    )
    assert response.status_code == 200
    return client


def test_add_user_shows_the_generated_password_once(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    response = web.post("/admin/users", {"username": "Marek", "role": "staff", "password": ""})
    assert response.status_code == 200
    body = text(response)
    assert "Dodano użytkownika marek" in body
    password = BeautifulSoup(body, "html.parser").select_one(".alert-ok code").get_text()
    assert len(password) >= 12
    assert password not in text(web.get("/admin/users"))  # shown only once
    # The new user must change the initial password before anything else.
    newcomer = WebClient(app.test_client())
    newcomer.get("/login")
    assert newcomer.post("/login", {"username": "marek", "password": password}).status_code == 303
    redirect = newcomer.get("/clients")
    assert redirect.status_code == 303 and redirect.headers["Location"].endswith("/account/password")
    assert "hasło początkowe" in text(web.get("/admin/users"))


def test_add_user_with_a_chosen_password_and_errors(web: WebClient, store: Store) -> None:
    response = web.post(
        "/admin/users", {"username": "anna", "role": "admin", "password": "chosen-password-1"}
    )
    assert response.status_code == 200
    assert (
        BeautifulSoup(text(response), "html.parser").select_one(".alert-ok code") is None
    )  # nothing to show
    before = dump(store), store.keyring_path.read_bytes()
    for data, fragment in [
        ({"username": "anna", "role": "staff", "password": "chosen-password-2"}, "już istnieje"),
        ({"username": "x", "role": "staff", "password": "chosen-password-2"}, "Login"),
        ({"username": "bob", "role": "staff", "password": "short"}, "12 znaków"),
        ({"username": "bob", "role": "owner", "password": "chosen-password-2"}, "Wybierz rolę"),
    ]:
        response = web.post("/admin/users", data)
        assert response.status_code == 422, data
        assert fragment in text(response)
    assert (dump(store), store.keyring_path.read_bytes()) == before
    assert store.keyring().usernames() == [ADMIN, "anna"]


def test_remove_user_ends_their_sessions(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    assert staff.get("/clients").status_code == 200
    response = web.post("/admin/users/ewa/remove")
    assert response.status_code == 303
    assert staff.get("/clients").status_code == 303
    assert store.keyring().usernames() == [ADMIN]
    assert "ewa" not in [u[0] for u in _active_users(store)]
    again = WebClient(app.test_client())
    again.get("/login")
    assert again.post("/login", {"username": "ewa", "password": "my-own-password-1"}).status_code == 401


def test_remove_user_rotates_the_database_key_and_the_office_keeps_working(
    app, web: WebClient, store: Store  # noqa: ANN001
) -> None:
    staff_client(app, store)
    epoch, key = store.keyring().epoch, store._require_dmk()  # noqa: SLF001
    assert web.post("/admin/users/ewa/remove").status_code == 303
    assert store.keyring().epoch == epoch + 1 and store._require_dmk() != key  # noqa: SLF001
    assert web.get("/clients").status_code == 200
    rows = audit_rows(web.get("/admin/audit?action=users.remove"))
    assert [(r["actor"], r["object"]) for r in rows] == [(ADMIN, "użytkownik ewa")]


def test_remove_user_while_the_portal_is_busy_says_so_and_changes_nothing(
    app, web: WebClient, store: Store  # noqa: ANN001
) -> None:
    staff_client(app, store)
    store.rotation_wait = 0.2
    before = dump(store), store.keyring_path.read_bytes()
    held = threading.Event()
    release = threading.Event()

    def long_request() -> None:  # another member of staff's request, holding its connection
        with store.connect():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=long_request)
    thread.start()
    held.wait(10)
    try:
        response = web.post("/admin/users/ewa/remove")
    finally:
        release.set()
        thread.join(10)
    assert response.status_code == 422
    assert "Portal jest teraz zajęty" in text(response)
    assert (dump(store), store.keyring_path.read_bytes()) == before


def _active_users(store: Store) -> list[tuple[str]]:
    db = store.connect()
    try:
        return [(u.username,) for u in users.list_users(db)]
    finally:
        db.close()


def test_last_admin_and_self_cannot_be_removed(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    before = dump(store), store.keyring_path.read_bytes()
    response = web.post(f"/admin/users/{ADMIN}/remove")
    assert response.status_code == 422 and "własnego konta" in text(response)
    assert web.post("/admin/users/nobody/remove").status_code == 422
    assert (dump(store), store.keyring_path.read_bytes()) == before


def test_staff_cannot_open_admin_pages(app, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    assert staff.get("/clients").status_code == 200
    before = dump(store)
    for url in ("/admin/users", "/admin/audit", "/office"):
        response = staff.get(url)
        assert response.status_code == 403, url
        assert "Traceback" not in text(response)
    for url, data in (
        ("/admin/users", {"username": "hacker", "role": "admin", "password": "hacker-password"}),
        (f"/admin/users/{ADMIN}/remove", {}),
        ("/office", {"name": "X", "nip": "5261040828", "ksef_environment": "prod"}),
    ):
        assert staff.post(url, data).status_code == 403, url
    assert dump(store) == before
    nav = BeautifulSoup(text(staff.get("/clients")), "html.parser").select("header nav a")
    assert [a["href"] for a in nav if a["href"].startswith(("/admin", "/office"))] == []


def test_audit_log_shows_logins_failures_and_client_changes(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    intruder = WebClient(app.test_client())
    intruder.get("/login")
    intruder.post(
        "/login",
        {"username": ADMIN, "password": "wrong-password-9"},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    created = web.post("/clients/new", {"nip": "5261040828", "name": "Audytowana Sp. z o.o."})
    client_id = re.search(r"/clients/(\d+)$", created.headers["Location"]).group(1)  # type: ignore[union-attr]
    web.post(f"/clients/{client_id}/edit", {"nip": "5261040828", "name": "Audytowana S.A."})
    web.post(f"/clients/{client_id}/archive")
    page = web.get("/admin/audit")
    assert page.status_code == 200
    entries = audit_rows(page)
    actions = [e["action"] for e in entries]
    for expected in (
        "instance.setup",
        "auth.login",
        "auth.login_failed",
        "clients.create",
        "clients.update",
        "clients.archive",
    ):
        assert expected in actions, actions
    assert actions[0] == "clients.archive"  # newest first
    failed = next(e for e in entries if e["action"] == "auth.login_failed")
    assert failed["ip"] == "192.0.2.7" and failed["actor"] == ADMIN
    create = next(e for e in entries if e["action"] == "clients.create")
    # the client's current name (not "klient 4"), the details as they were then
    assert "Audytowana Sp. z o.o." in create["details"] and create["object"] == "Audytowana S.A. (NIP 526-104-08-28)"


def test_audit_filters(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    staff.post("/clients/new", {"nip": "5261040828", "name": "Firma pracownika"})
    by_prefix = audit_rows(web.get("/admin/audit?action=auth."))
    assert by_prefix and {e["action"].split(".")[0] for e in by_prefix} == {"auth"}
    exact = audit_rows(web.get("/admin/audit?action=clients.create"))
    assert [e["action"] for e in exact] == ["clients.create"]
    by_actor = audit_rows(web.get("/admin/audit?actor=ewa"))
    assert by_actor and {e["actor"] for e in by_actor} == {"ewa"}
    assert "clients.create" in [e["action"] for e in by_actor]
    both = audit_rows(web.get("/admin/audit?actor=ewa&action=clients."))
    assert [e["action"] for e in both] == ["clients.create"]
    future = web.get("/admin/audit?since=2999-01-01")
    assert audit_rows(future) == [] and "Brak wpisów" in text(future) or audit_rows(future) == []
    past = audit_rows(web.get("/admin/audit?until=2000-01-01"))
    assert past == []
    total = len(dump(store)["audit_log"])
    assert len(audit_rows(web.get("/admin/audit?since=2000-01-01"))) == min(total, 50)
    partial = web.get("/admin/audit?action=auth.", htmx=True)
    assert "<html" not in text(partial) and audit_rows(partial) == by_prefix
    assert "HX-Request" in partial.headers.get("Vary", "")
    soup = BeautifulSoup(text(web.get("/admin/audit")), "html.parser")
    options = [o["value"] for o in soup.select("select[name=action] option")]
    assert "clients.create" in options and "auth.login" in options


def test_audit_log_is_paginated(web: WebClient, store: Store) -> None:
    from klucznik.records import audit

    with store.write() as db:
        for i in range(120):
            audit.record(db, actor=ADMIN, action="test.bulk", object_type="x", object_id=i, at=NOW)
    first = web.get("/admin/audit?action=test.bulk")
    assert len(audit_rows(first)) == 50 and "Strona 1 z 3" in text(first)
    third = audit_rows(web.get("/admin/audit?action=test.bulk&page=3"))
    assert [e["object"] for e in third] == [f"x {i}" for i in range(19, -1, -1)]


def test_office_profile(web: WebClient, store: Store) -> None:
    assert web.get("/office").status_code == 200
    before = dump(store)
    bad = web.post(
        "/office", {"name": "", "nip": "123", "ksef_environment": "sandbox", "sandbox_url": "ftp://x"}
    )
    assert bad.status_code == 422
    for fragment in ("Wpisz nazwę biura", "NIP ma 10 cyfr", "adres piaskownicy"):
        assert fragment in text(bad)
    assert dump(store) == before
    ok = web.post(
        "/office",
        {
            "name": "Biuro Rachunkowe Ćma",
            "nip": "526-104-08-28",
            "ksef_environment": "sandbox",
            "sandbox_url": "http://127.0.0.1:8765/v2/",
        },
    )
    assert ok.status_code == 200 and "Zapisano." in text(ok)
    db = store.connect()
    try:
        profile = office.get_office(db)
    finally:
        db.close()
    assert profile == office.OfficeProfile(
        name="Biuro Rachunkowe Ćma",
        nip="5261040828",
        ksef_environment="sandbox",
        sandbox_url="http://127.0.0.1:8765/v2",
    )
    page = BeautifulSoup(text(web.get("/office")), "html.parser")
    assert page.find("input", {"name": "nip"})["value"] == "526-104-08-28"
    assert page.select_one("select[name=ksef_environment] option[selected]")["value"] == "sandbox"


@pytest.mark.parametrize("environment", ["test", "demo", "prod"])
def test_office_environment_choices(web: WebClient, store: Store, environment: str) -> None:
    response = web.post("/office", {"name": "Biuro", "nip": "5261040828", "ksef_environment": environment})
    assert response.status_code == 200
    db = store.connect()
    try:
        assert office.get_office(db).ksef_environment == environment
    finally:
        db.close()
    wrong = web.post("/office", {"name": "Biuro", "nip": "5261040828", "ksef_environment": "mars"})
    assert wrong.status_code == 422 and "Wybierz środowisko KSeF z listy" in text(wrong)
