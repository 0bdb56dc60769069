"""Issue 9 item 21: an administrator resets another user's password and changes roles; the recovery code prints."""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup

from klucznik.instance.store import Store
from klucznik.records import users
from tests.support.defaults import ADMIN
from tests.support.web import WebClient
from tests.web.test_admin_web import audit_rows
from tests.web.test_admin_web import staff_client

LOOK_ALIKES = set("0Oo1lIi")
ROOT = Path(__file__).resolve().parents[2]


def text(response) -> str:  # noqa: ANN001
    return response.get_data(as_text=True)


def soup(response) -> BeautifulSoup:  # noqa: ANN001
    return BeautifulSoup(text(response), "html.parser")


def test_one_time_passwords_have_no_look_alike_characters() -> None:
    seen = {users.one_time_password() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        assert re.fullmatch(r"([A-Za-z2-9]{4}-){3}[A-Za-z2-9]{4}", password)
        assert not LOOK_ALIKES & set(password)
    assert not LOOK_ALIKES & set(users.ONE_TIME_ALPHABET)


def test_a_generated_initial_password_has_no_look_alikes_either(web: WebClient) -> None:
    response = web.post("/admin/users", {"username": "marek", "role": "staff", "password": ""})
    password = soup(response).select_one(".alert-ok code").get_text()
    assert not LOOK_ALIKES & set(password) and len(password) == 19


def test_admin_resets_a_password_the_user_must_change_it(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    assert staff.get("/clients").status_code == 200
    epoch = store.keyring().epoch
    page = soup(web.get("/admin/users"))
    assert page.select_one('form[action="/admin/users/ewa/reset-password"] button').get_text(strip=True) == (
        "Nadaj hasło jednorazowe")
    assert page.select_one(f'form[action="/admin/users/{ADMIN}/reset-password"]') is None  # not oneself
    response = web.post("/admin/users/ewa/reset-password")
    assert response.status_code == 200
    password = soup(response).select_one("#reset-done code.one-time-password").get_text()
    assert not LOOK_ALIKES & set(password)
    assert password not in text(web.get("/admin/users"))  # shown once
    assert store.keyring().epoch == epoch + 1  # the database key was rotated
    assert staff.get("/clients").status_code == 303  # their sessions ended
    old = WebClient(app.test_client())
    old.get("/login")
    assert old.post("/login", {"username": "ewa", "password": "my-own-password-1"}).status_code == 401
    new = WebClient(app.test_client())
    new.get("/login")
    assert new.post("/login", {"username": "ewa", "password": password}).status_code == 303
    forced = new.get("/clients")
    assert forced.status_code == 303 and forced.headers["Location"].endswith("/account/password")
    rows = audit_rows(web.get("/admin/audit?action=users.password_reset_by_admin"))
    assert [(r["actor"], r["what"], r["object"]) for r in rows] == [
        (ADMIN, "Hasło zresetowane przez administratora", "użytkownik ewa")]
    assert password not in text(web.get("/admin/audit"))


def test_admin_cannot_reset_own_password_here(web: WebClient, store: Store) -> None:
    epoch = store.keyring().epoch
    response = web.post(f"/admin/users/{ADMIN}/reset-password")
    assert response.status_code == 422
    assert "stronie „Hasło”" in soup(response).get_text()
    assert store.keyring().epoch == epoch


def test_staff_cannot_reset_or_change_roles(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    staff.get("/clients")
    assert staff.post(f"/admin/users/{ADMIN}/reset-password").status_code == 403
    assert staff.post(f"/admin/users/{ADMIN}/role", {"role": "staff"}).status_code == 403
    with store.connect() as db:
        assert users.get_user(db, ADMIN).role == "admin"


def test_roles_change_and_the_office_keeps_an_administrator(app, web: WebClient, store: Store) -> None:  # noqa: ANN001
    staff = staff_client(app, store)
    assert staff.get("/admin/users").status_code == 403
    assert web.post("/admin/users/ewa/role", {"role": "admin"}).status_code == 303
    assert staff.get("/admin/users").status_code == 200  # an administrator now
    rows = audit_rows(web.get("/admin/audit?action=users.role_change"))
    assert "rola : pracownik → administrator" in rows[0]["details"]
    # ewa demotes the original administrator; then she is the only one and cannot be demoted
    staff.get("/admin/users")
    assert staff.post(f"/admin/users/{ADMIN}/role", {"role": "staff"}).status_code == 303
    response = staff.post("/admin/users/ewa/role", {"role": "staff"})  # not shown as a form, but refused anyway
    with store.connect() as db:
        assert users.get_user(db, "ewa").role == "admin"
        assert db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0] == 1
    assert response.status_code == 422
    assert "jedyny administrator" in soup(response).get_text()


def test_an_unknown_role_is_refused(web: WebClient, app, store: Store) -> None:  # noqa: ANN001
    staff_client(app, store)
    response = web.post("/admin/users/ewa/role", {"role": "root"})
    assert response.status_code == 422
    assert "Wybierz rolę" in soup(response).get_text()


def test_the_recovery_code_page_has_a_print_button(app, anon: WebClient) -> None:  # noqa: ANN001
    with app.test_request_context("/"):
        from flask import render_template

        html = render_template("auth/recovery_code.html", code="ABCD-EFGH-2345-6789", form=None)
    page = BeautifulSoup(html, "html.parser")
    button = page.select_one("button[data-print]")
    assert button is not None and button.get_text(strip=True) == "Drukuj tę stronę"
    assert button["type"] == "button"
    script = page.select_one('script[src$="/static/print.js"]')
    assert script is not None
    served = anon.get("/static/print.js")
    try:
        assert served.status_code == 200 and "window.print()" in text(served)
    finally:
        served.close()
    assert "<script>" not in html and "onclick" not in html
    assert "@media print" in (ROOT / "static" / "app.css").read_text("utf-8")
