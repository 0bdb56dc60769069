"""Method 3 upload form: inline HTMX checks for every code, full upload, supersede, nothing stored on errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik import certs as c
from klucznik.certs.model import SLOT_TYPES
from klucznik.records import clients
from tests.support.certificates import AT
from tests.support.certificates import OTHER_NIP
from tests.support.certificates import PASSWORD
from tests.support.certificates import PESEL
from tests.support.certificates import cert_pem
from tests.support.certificates import certificate
from tests.support.certificates import ec_key
from tests.support.certificates import good_pair
from tests.support.certificates import key_pem
from tests.support.certificates import pkcs12_file
from tests.support.certificates import rsa_key
from tests.support.certificates import sample
from tests.support.defaults import NOW

TABLES = ("credentials", "clients", "audit_log")


@pytest.fixture
def pinned(app):
    """Validation time pinned to :data:`AT` (the generated certificates are valid around it)."""
    app.config["KLUCZNIK_CLOCK"] = lambda: AT
    return app


def upload_url(client_id: int) -> str:
    return f"/clients/{client_id}/certificates/upload"


def check_url(client_id: int, target: str) -> str:
    return f"/clients/{client_id}/certificates/check/{target}"


def valid_form() -> dict[str, object]:
    """Every field of a valid form for the client NIP 5261040828: slot files and passwords, NIP."""
    online_crt, online_key = good_pair(slot="online")
    offline_crt, offline_key = good_pair(slot="offline")
    return {
        "online_crt": online_crt,
        "online_key": online_key,
        "online_password": PASSWORD,
        "offline_crt": offline_crt,
        "offline_key": offline_key,
        "offline_password": PASSWORD,
        "nip": "526-104-08-28",
    }


def split(form: dict[str, object]) -> tuple[dict[str, str], dict[str, tuple[bytes, str]]]:
    """(text fields, files) as the WebClient wants them; ``None`` leaves a field out."""
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    files = {
        k: (v, f"{k}.{'crt' if k.endswith('crt') else 'key'}")
        for k, v in form.items()
        if isinstance(v, bytes)
    }
    return data, files


def post_check(web, client_id: int, target: str, form: dict[str, object]):
    """Open the form (for this session's CSRF token), then post ``form`` to the inline check of ``target``."""
    web.get(upload_url(client_id))
    data, files = split(form)
    return web.post(check_url(client_id, target), data, files=files, htmx=True)


def post_upload(web, client_id: int, form: dict[str, object]):
    """Open the form, then submit ``form`` with the "Wgraj pliki" button (a plain, non-htmx POST)."""
    web.get(upload_url(client_id))
    data, files = split(form)
    return web.post(upload_url(client_id), data, files=files)


def statuses(response) -> dict[str, tuple[str, set[str], str]]:
    """``{target: (state, codes, text)}`` of every status element in a response."""
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    found = {}
    for element in soup.select("[id^=status-]"):
        state = next(
            cls.removeprefix("cert-")
            for cls in element["class"]
            if cls.startswith("cert-") and cls != "cert-status"
        )
        found[element["id"].removeprefix("status-")] = (
            state,
            set(element.get("data-codes", "").split()),
            element.get_text(" ", strip=True),
        )
    return found


def button_disabled(response) -> bool:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    button = soup.select_one("#upload-submit")
    assert button is not None and button.get_text(strip=True) == "Wgraj pliki"
    return button.has_attr("disabled")


def dump(store) -> dict[str, list[tuple]]:
    """Every row of the tables an upload touches."""
    db = store.connect()
    try:
        return {
            table: [tuple(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()]
            for table in TABLES
        }
    finally:
        db.close()


def _rsa_1024_pair():
    key = rsa_key(1024)
    return cert_pem(certificate(key=key)), key_pem(key)


def _p12_key():
    crt, _ = good_pair(slot="online")
    return pkcs12_file(c.load_certificate(crt).certificate, ec_key("online"))


def _online(crt_key):
    return {"online_crt": crt_key[0], "online_key": crt_key[1]}


# code -> (field that triggers the check, changes to the valid form, target showing it, severity)
INLINE_CASES = {
    "not_a_certificate": (
        "online-crt",
        lambda: {"online_crt": b"\x00\x01 nie certyfikat"},
        "online-crt",
        "error",
    ),
    "not_a_private_key": ("online-key", lambda: {"online_key": b"to nie klucz"}, "online-key", "error"),
    "files_swapped": ("online-key", lambda: _online(good_pair(slot="online")[::-1]), "online-crt", "error"),
    "unsupported_key": ("online-crt", lambda: _online(_rsa_1024_pair()), "online-crt", "error"),
    "password_required": ("online-key", lambda: {"online_password": ""}, "online-password", "error"),
    "wrong_password": ("online-password", lambda: {"online_password": "zle"}, "online-password", "error"),
    "key_mismatch": ("online-key", lambda: {"online_key": key_pem(ec_key("other"))}, "online-key", "error"),
    "wrong_slot": (
        "online-crt",
        lambda: _online(good_pair(slot="offline", key=ec_key("third"))),
        "online-crt",
        "error",
    ),
    "not_ksef_type": ("online-crt", lambda: _online(good_pair(ksef_type=None)), "online-crt", "error"),
    "not_ksef_issuer": (
        "offline-crt",
        lambda: {"offline_crt": good_pair(slot="offline", issuer="Obcy CA")[0]},
        "offline-crt",
        "error",
    ),
    "expired": (
        "online-crt",
        lambda: _online(good_pair(not_after=AT - timedelta(days=1))),
        "online-crt",
        "error",
    ),
    "not_yet_valid": (
        "online-crt",
        lambda: _online(good_pair(not_before=AT + timedelta(days=1))),
        "online-crt",
        "warning",
    ),
    "expires_soon": (
        "online-crt",
        lambda: _online(good_pair(not_after=AT + timedelta(days=10))),
        "online-crt",
        "warning",
    ),
    "nip_invalid": ("nip", lambda: {"nip": "526-104-08-29"}, "nip", "error"),
    "nip_mismatch": ("online-crt", lambda: _online(good_pair(nip=OTHER_NIP)), "online-crt", "error"),
    "identity_person": (
        "online-crt",
        lambda: {**_online(good_pair(pesel=PESEL)), "offline_crt": good_pair(slot="offline", pesel=PESEL)[0]},
        "online-crt",
        "warning",
    ),
    "file_too_large": (
        "online-crt",
        lambda: {"online_crt": b"x" * (c.MAX_FILE_SIZE + 1)},
        "online-crt",
        "error",
    ),
    "empty_file": ("online-key", lambda: {"online_key": b""}, "online-key", "error"),
    "pkcs12_file": ("online-key", lambda: {"online_key": _p12_key()}, "online-key", "error"),
}


def test_inline_cases_cover_every_code():
    assert set(INLINE_CASES) == set(c.CODES)


def test_form_page(web, client_company, pinned):
    response = web.get(upload_url(client_company.id))
    assert response.status_code == 200
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    legends = [legend.get_text(strip=True) for legend in soup.select("fieldset legend")]
    assert legends == ["Certyfikat uwierzytelniania (online)", "Certyfikat weryfikacji wystawcy (offline)"]
    for slot in ("online", "offline"):
        for name, kind in (("crt", "file"), ("key", "file"), ("password", "password")):
            element = soup.select_one(f"#{slot}_{name}")
            assert element["type"] == kind and element.has_attr("hx-post") and not element.has_attr("value")
    assert soup.select_one("#nip")["value"] == "526-104-08-28"
    assert soup.select_one("form#cert-upload")["enctype"] == "multipart/form-data"
    assert button_disabled(response)


@pytest.mark.parametrize("code", sorted(INLINE_CASES))
def test_every_code_through_the_inline_check(code, web, client_company, pinned):
    trigger, changes, target, severity = INLINE_CASES[code]
    form = {**valid_form(), **changes()}
    response = post_check(web, client_company.id, trigger, form)
    found = statuses(response)
    assert response.status_code == (422 if found[trigger][0] == "error" else 200)
    assert set(found) == {f"{s}-{f}" for s in c.SLOTS for f in ("crt", "key", "password")} | {"nip"}
    state, codes, text = found[target]
    assert code in codes, found
    assert state == severity
    assert button_disabled(response) is (severity == "error")
    assert PASSWORD not in response.get_data(as_text=True)


def test_valid_form_shows_green_summaries_and_enables_the_button(web, client_company, pinned):
    form = valid_form()
    response = post_check(web, client_company.id, "offline-password", form)
    assert response.status_code == 200
    found = statuses(response)
    assert {state for state, _, _ in found.values()} == {"ok"}
    _state, _, text = found["online-crt"]
    serial = c.load_certificate(form["online_crt"]).serial
    assert "Identyfikuje Przykładowa Spółka z o.o. (NIP 526-104-08-28)" in text
    assert "Typ w KSeF Uwierzytelnianie (online)" in text
    assert f"Numer seryjny {serial}" in text
    assert "Ważny do 2028-02-21" in text
    assert found["offline-crt"][2].count("Offline") == 1
    assert "klucz EC P-256 zabezpieczony hasłem" in found["online-key"][2]
    assert "poprawne: klucz się otwiera" in found["offline-password"][2]
    assert not button_disabled(response)
    body = response.get_data(as_text=True)
    assert body.count('hx-swap-oob="true"') == 9  # six other statuses, the button, the missing list, the step bar


def test_only_one_file_chosen_checks_that_file_alone(web, client_company, pinned):
    crt = valid_form()["online_crt"]
    response = post_check(web, client_company.id, "online-crt", {"online_crt": crt, "nip": "5261040828"})
    assert response.status_code == 200
    found = statuses(response)
    assert found["online-crt"][0] == "ok"
    assert c.load_certificate(crt).serial in found["online-crt"][2]
    assert {found[t][0] for t in found if t not in ("online-crt", "nip")} == {"empty"}
    assert button_disabled(response)


def test_real_sample_inline(web, store, pinned):
    s = sample("seal")
    with store.write() as db:
        client = clients.create_client(db, clients.validate(nip=s.nip, name="Onbeald"), actor="admin", at=NOW)
    form = {"online_crt": s.crt, "online_key": s.key, "online_password": s.password, "nip": s.nip}
    response = post_check(web, client.id, "online-password", form)
    found = statuses(response)
    assert [found[t][0] for t in ("online-crt", "online-key", "online-password")] == ["ok", "ok", "ok"]
    assert s.serial in found["online-crt"][2] and "685-233-29-48" in found["online-crt"][2]


def test_nip_of_another_client_is_refused(web, client_company, pinned):
    form = valid_form()
    form["nip"] = OTHER_NIP
    response = post_check(web, client_company.id, "nip", form)
    assert response.status_code == 422
    state, codes, _ = statuses(response)["nip"]
    assert state == "error" and "nip_mismatch" in codes


def test_unknown_target_and_duplicate_fields(web, client_company, pinned):
    assert post_check(web, client_company.id, "online-cert", valid_form()).status_code == 404
    data, _files = split(valid_form())
    response = web.client.post(
        check_url(client_company.id, "nip"),
        data={**{k: [v, v] for k, v in data.items()}},
        headers={"X-CSRFToken": web.token(), "HX-Request": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400


def test_full_upload_stores_both_pairs(web, store, client_company, pinned):
    form = valid_form()
    response = post_upload(web, client_company.id, form)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/clients/{client_company.id}")
    db = store.connect()
    try:
        rows = {
            row["slot"]: row
            for row in db.query("SELECT * FROM credentials WHERE client_id = ?", [client_company.id])
        }
        assert set(rows) == {"online", "offline"}
        for slot in ("online", "offline"):
            row = rows[slot]
            info = c.load_certificate(form[f"{slot}_crt"])
            assert row["certificate"] == info.der and row["private_key"] == form[f"{slot}_key"]
            assert (
                row["key_password"] == PASSWORD and row["status"] == "active" and row["origin"] == "uploaded"
            )
            assert row["serial"] == info.serial and row["ksef_type"] == SLOT_TYPES[slot]
            assert row["fingerprint"] == info.fingerprint and row["created_by"] == "admin"
        assert clients.get_client(db, client_company.id).auth_method == "user_certs"
        audit = list(db.query("SELECT * FROM audit_log WHERE action = 'credentials.upload'"))
        assert len(audit) == 1 and audit[0]["object_id"] == str(client_company.id)
        assert PASSWORD not in audit[0]["details"]
    finally:
        db.close()
    page = web.get(f"/clients/{client_company.id}")
    assert c.load_certificate(form["online_crt"]).serial in page.get_data(as_text=True)


def test_second_upload_supersedes_the_first(web, store, client_company, pinned):
    first = valid_form()
    assert post_upload(web, client_company.id, first).status_code == 303
    second = valid_form()
    second["online_crt"], second["online_key"] = good_pair(slot="online", key=ec_key("second-online"))
    second["offline_crt"], second["offline_key"] = good_pair(slot="offline", key=ec_key("second-offline"))
    response = post_upload(web, client_company.id, second)
    assert response.status_code == 303
    db = store.connect()
    try:
        rows = list(db.query("SELECT slot, serial, status, superseded_at FROM credentials ORDER BY id"))
    finally:
        db.close()
    assert [r["status"] for r in rows] == ["superseded", "superseded", "active", "active"]
    assert all(r["superseded_at"] for r in rows[:2]) and not any(r["superseded_at"] for r in rows[2:])
    assert [r["serial"] for r in rows[2:]] == [
        c.load_certificate(second[f"{s}_crt"]).serial for s in ("online", "offline")
    ]


@pytest.mark.parametrize("code", sorted(code for code, case in INLINE_CASES.items() if case[3] == "error"))
def test_invalid_upload_changes_nothing(code, web, store, client_company, pinned):
    assert post_upload(web, client_company.id, valid_form()).status_code == 303
    before = dump(store)
    _trigger, changes, _target, _severity = INLINE_CASES[code]
    response = post_upload(web, client_company.id, {**valid_form(), **changes()})
    assert response.status_code == 422
    assert dump(store) == before
    body = response.get_data(as_text=True)
    assert "Nic nie zostało zapisane" in body
    assert PASSWORD not in body
    soup = BeautifulSoup(body, "html.parser")
    assert all(not element.has_attr("value") for element in soup.select("input[type=password]"))
    assert button_disabled(response)


def test_upload_with_a_missing_file_changes_nothing(web, store, client_company, pinned):
    before = dump(store)
    form = valid_form()
    del form["offline_key"]
    response = post_upload(web, client_company.id, form)
    assert response.status_code == 422
    assert dump(store) == before


def test_upload_requires_login(anon, client_company, pinned):
    response = anon.get(upload_url(client_company.id))
    assert response.status_code in (302, 303)


def test_english_interface_shows_the_english_messages(web, client_company, pinned):
    web.get(upload_url(client_company.id))
    assert web.post("/language", {"lang": "en"}).status_code in (302, 303)
    page = web.get(upload_url(client_company.id))
    legends = [
        e.get_text(strip=True)
        for e in BeautifulSoup(page.get_data(as_text=True), "html.parser").select("legend")
    ]
    assert legends == ["Authentication certificate (online)", "Issuer verification certificate (offline)"]
    form = {**valid_form(), **_online(good_pair(slot="offline", key=ec_key("third")))}
    response = post_check(web, client_company.id, "online-crt", form)
    state, codes, text = statuses(response)["online-crt"]
    assert codes == {"wrong_slot"} and state == "error"
    assert text.startswith("This is the offline certificate — upload it in the")


def test_a_wrong_password_leaves_the_key_field_explained_not_blank(web, client_company, pinned):
    response = post_check(
        web, client_company.id, "online-password", {**valid_form(), "online_password": "zle"}
    )
    found = statuses(response)
    assert found["online-password"][:2] == ("error", {"wrong_password"})
    assert (
        found["online-key"][0] == "ok"
        and "zabezpieczony hasłem: wpisz hasło poniżej" in found["online-key"][2]
    )
    assert "zle" not in response.get_data(as_text=True)
