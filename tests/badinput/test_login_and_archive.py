"""Login floods and archived clients (issue 9, items 5 and 7).

Password spraying from one address is throttled whatever the usernames; failed logins are counted in memory
and written as summaries, so a flood writes nothing per attempt. An archived client is read-only until it
is restored: the wizard, the certificate upload and the edit form answer 409 with a plain message.
"""

from __future__ import annotations

import json

import pytest

from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.badinput import refused
from tests.support.badinput import stored
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.web import WebClient

SPRAY = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}


def _generation(store: Store) -> int:
    with store.connect() as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def test_password_spraying_from_one_address_is_throttled(app, anon: WebClient, store: Store) -> None:  # noqa: ANN001
    anon.get("/login")
    statuses = [
        anon.post("/login", {"username": f"user{n}", "password": "Wiosna2026!!"}, **SPRAY).status_code
        for n in range(20)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 10
    # Even the right password waits while the address is throttled; another address is not affected.
    blocked = anon.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD}, **SPRAY)
    refused(blocked, 429, "Zbyt wiele nieudanych prób")
    other = WebClient(app.test_client())
    other.get("/login")
    assert other.post("/login", {"username": ADMIN, "password": ADMIN_PASSWORD},
                      environ_base={"REMOTE_ADDR": "203.0.113.10"}).status_code == 303


def test_a_flood_of_failed_logins_writes_once_then_a_summary(app, anon: WebClient, store: Store) -> None:  # noqa: ANN001
    app.config["KLUCZNIK_LOGIN_ATTEMPTS_PER_ADDRESS"] = 1000
    app.extensions.pop("klucznik.throttle", None)
    anon.get("/login")
    anon.post("/login", {"username": "ghost0", "password": "x" * 12}, **SPRAY)
    after_first = _generation(store)
    files = _instance_files(store)
    refused_logins = 1 + sum(
        anon.post("/login", {"username": f"ghost{n % 7}", "password": "x" * 12}, **SPRAY).status_code == 401
        for n in range(1, 40)
    )
    assert refused_logins == 35  # 5 per username and address, then 429 (not a login attempt)
    assert _generation(store) == after_first  # no write (and no snapshot) per attempt
    assert _instance_files(store) == files  # nor a byte appended to the change log or a snapshot
    WebClient(app.test_client()).login()  # the next login writes the summaries
    rows = [json.loads(r[7]) | {"actor": r[2], "ip": r[3]}
            for r in _audit(store) if r[4] == "auth.login_failed"]
    assert sum(r["count"] for r in rows) == refused_logins
    assert {r["actor"] for r in rows} == {f"ghost{n}" for n in range(7)}
    assert {r["ip"] for r in rows} == {"203.0.113.9"}


def _instance_files(store: Store) -> dict[str, int]:
    """Name → size of every file of the instance but the live database's own (its WAL moves with reads)."""
    return {str(p.relative_to(store.path)): p.stat().st_size for p in sorted(store.path.rglob("*"))
            if p.is_file() and not p.name.startswith("klucznik.db")}


def _audit(store: Store) -> list[tuple]:
    with store.connect() as db:
        return db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("a" * 5000, ADMIN_PASSWORD),
        (ADMIN, "p" * 5000),
        (ADMIN + "\r\nX-Injected: 1", ADMIN_PASSWORD),
        (ADMIN + "\x00", ADMIN_PASSWORD),
        ("", ""),
        ("ádmin", ADMIN_PASSWORD),
        ("<script>alert(1)</script>", "x"),
        ("' OR 1=1 --", "' OR 1=1 --"),
        (ADMIN, ADMIN_PASSWORD.upper()),
        (ADMIN, ADMIN_PASSWORD + " "),
    ],
)
def test_odd_logins_are_refused_plainly(anon: WebClient, store: Store, username: str, password: str) -> None:
    anon.get("/login")
    before = stored(store)
    response = anon.post("/login", {"username": username, "password": password})
    text = refused(response, (401, 400), "")
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)
    assert "Nieprawidłowy login lub hasło" in text or "Pole jest za długie" in text
    assert stored(store)[0]["clients"] == before[0]["clients"] and stored(store)[1] == before[1]


# -- archived clients -------------------------------------------------------------------------------------------


@pytest.fixture
def archived(store: Store, client_company: clients.Client) -> clients.Client:
    with store.write() as db:
        return clients.set_archived(db, client_company.id, True, actor=ADMIN, at=NOW)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/clients/{id}/wizard"),
        ("get", "/clients/{id}/wizard/grant"),
        ("get", "/clients/{id}/wizard/certificates"),
        ("post", "/clients/{id}/wizard/grant/new"),
        ("post", "/clients/{id}/wizard/certificates/new"),
        ("get", "/clients/{id}/certificates/upload"),
        ("post", "/clients/{id}/certificates/upload"),
        ("post", "/clients/{id}/certificates/check/online-crt"),
        ("get", "/clients/{id}/edit"),
        ("post", "/clients/{id}/edit"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_an_archived_client_is_read_only(web: WebClient, store: Store, archived: clients.Client, method: str,
                                         path: str, htmx: bool) -> None:
    before = stored(store)
    url = path.format(id=archived.id)
    if method == "get":
        response = web.get(url, htmx=htmx)
    else:
        response = web.post(url, {"nip": archived.nip, "name": "Nowa nazwa"},
                            files={"online_crt": (b"-----BEGIN CERTIFICATE-----", "a.crt")}, htmx=htmx)
    refused(response, 409, "jest w archiwum", "Przywróć go z archiwum")
    assert stored(store) == before


def test_an_archived_client_page_offers_only_the_restore(web: WebClient, archived: clients.Client) -> None:
    page = web.get(f"/clients/{archived.id}").get_data(as_text=True)
    assert f"/clients/{archived.id}/wizard" not in page and f"/clients/{archived.id}/edit" not in page
    assert "Przywróć z archiwum" in page or "Przywróć" in page
    web.post(f"/clients/{archived.id}/archive", {"restore": "1"})
    assert web.get(f"/clients/{archived.id}/edit").status_code == 200
    assert web.get(f"/clients/{archived.id}/wizard").status_code == 200


def test_the_domain_refuses_to_edit_an_archived_client(store: Store, archived: clients.Client) -> None:
    from klucznik.errors import Conflict

    with pytest.raises(Conflict) as caught, store.write() as db:
        clients.update_client(db, archived.id, clients.validate(nip=archived.nip, name="Inna"), actor=ADMIN, at=NOW)
    assert "w archiwum" in caught.value.message_pl
