"""Certificate and key uploads of method 3 (SECURITY.md §3.1, U1–U27): every bad file or field is refused at
the final submit and at the inline check, with a message at the field, and nothing is stored.

The files are built by tests/support/certificates.py (a test CA issuing KSeF-like certificates); each case
changes one field of an otherwise valid form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from klucznik import certs as c
from klucznik.instance.store import Store
from tests.support.badinput import refused
from tests.support.badinput import stored
from tests.support.certificates import AT
from tests.support.certificates import OTHER_NIP
from tests.support.certificates import PASSWORD
from tests.support.certificates import cert_pem
from tests.support.certificates import certificate
from tests.support.certificates import ec_key
from tests.support.certificates import good_pair
from tests.support.certificates import key_pem
from tests.support.certificates import pkcs12_file
from tests.support.certificates import rsa_key
from tests.support.web import WebClient


@pytest.fixture
def pinned(app):  # noqa: ANN001, ANN201
    app.config["KLUCZNIK_CLOCK"] = lambda: AT
    return app


def valid_form() -> dict[str, object]:
    online_crt, online_key = good_pair(slot="online")
    offline_crt, offline_key = good_pair(slot="offline")
    return {"online_crt": online_crt, "online_key": online_key, "online_password": PASSWORD,
            "offline_crt": offline_crt, "offline_key": offline_key, "offline_password": PASSWORD,
            "nip": "526-104-08-28"}


def _rsa_1024() -> dict[str, object]:
    key = rsa_key(1024)
    return {"online_crt": cert_pem(certificate(key=key)), "online_key": key_pem(key)}


def _p12() -> dict[str, object]:
    crt, _ = good_pair(slot="online")
    return {"online_key": pkcs12_file(c.load_certificate(crt).certificate, ec_key("online"))}


#: case → changes to the valid form (bytes: a file; str: a text field).
CASES: dict[str, Callable[[dict[str, object]], dict[str, object]]] = {
    "U1 key in the certificate field": lambda f: {"online_crt": f["online_key"]},
    "U2 certificate in the key field": lambda f: {"online_key": f["online_crt"]},
    "U21 empty online certificate": lambda f: {"online_crt": b""},
    "U21 empty online key": lambda f: {"online_key": b""},
    "U21 empty offline certificate": lambda f: {"offline_crt": b""},
    "U21 empty offline key": lambda f: {"offline_key": b""},
    "U21 one byte certificate": lambda f: {"online_crt": b"-"},
    "U21 one byte key": lambda f: {"offline_key": b"\n"},
    "U22 random certificate": lambda f: {"online_crt": os.urandom(300)},
    "U22 random key": lambda f: {"online_key": os.urandom(300)},
    "U24 PNG named .crt": lambda f: {"online_crt": b"\x89PNG\r\n\x1a\n" + os.urandom(64)},
    "U24 ZIP named .key": lambda f: {"offline_key": b"PK\x03\x04" + os.urandom(64)},
    "U24 HTML named .crt": lambda f: {"online_crt": b"<script>alert(1)</script>"},
    "U7 encrypted key without a password": lambda f: {"online_password": ""},
    "U9 wrong key password": lambda f: {"offline_password": "zle-haslo"},
    "U9 password of 5000 characters": lambda f: {"online_password": "x" * 5000},
    "U12 PKCS#12 in the key field": lambda f: _p12(),
    "U13 key of another certificate": lambda f: {"online_key": key_pem(ec_key("other"))},
    "U14 RSA 1024": lambda f: _rsa_1024(),
    "U15 expired certificate": lambda f: dict(zip(("online_crt", "online_key"),
                                                  good_pair(not_after=AT - timedelta(seconds=1)), strict=True)),
    "U17 offline certificate in the online slot": lambda f: dict(
        zip(("online_crt", "online_key"), good_pair(slot="offline", key=ec_key("third")), strict=True)),
    "U18 certificate without keyUsage": lambda f: dict(zip(("online_crt", "online_key"),
                                                            good_pair(ksef_type=None), strict=True)),
    "U19 certificate of another company": lambda f: dict(zip(("online_crt", "online_key"),
                                                              good_pair(nip=OTHER_NIP), strict=True)),
    "U20 NIP with a wrong check digit": lambda f: {"nip": "526-104-08-29"},
    "U20 NIP 0000000000": lambda f: {"nip": "0000000000"},
    "U20 NIP in full-width digits": lambda f: {"nip": "５２６１０４０８２８"},
    "U20 NIP of another client": lambda f: {"nip": OTHER_NIP},
    "U20 NIP of 5000 characters": lambda f: {"nip": "5" * 5000},
}


def _post(web: WebClient, client_id: int, form: dict[str, object], *, target: str | None, names=None):  # noqa: ANN001, ANN202
    web.get(f"/clients/{client_id}/certificates/upload")
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    files = {k: (v, (names or {}).get(k, f"{k}.{'crt' if k.endswith('crt') else 'key'}"))
             for k, v in form.items() if isinstance(v, bytes)}
    url = (f"/clients/{client_id}/certificates/check/{target}" if target
           else f"/clients/{client_id}/certificates/upload")
    return web.post(url, data, files=files, htmx=target is not None)


def _errors(response) -> list[str]:  # noqa: ANN001
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return [p.get_text(" ", strip=True) for p in soup.select(".cert-status p.error") if p.get_text(strip=True)]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("where", ["submit", "inline check"])
def test_a_bad_file_or_field_is_refused_with_a_message(web: WebClient, store: Store, client_company, pinned,  # noqa: ANN001
                                                       case: str, where: str) -> None:
    form = valid_form()
    form.update(CASES[case](form))
    before = stored(store)
    response = _post(web, client_company.id, form, target=None if where == "submit" else "online-crt")
    refused(response, (422, 200) if where == "inline check" else 422)
    errors = _errors(response)
    assert errors and all(len(text) > 20 for text in errors), errors
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)
    assert stored(store) == before


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "cert.crt\x00.php", "c" * 300 + ".crt", "con.crt", "Żółć \u202e.crt", "<img src=x>.crt"],
)
def test_u26_hostile_file_names_are_never_used_or_echoed(web: WebClient, store: Store, client_company, pinned,  # noqa: ANN001
                                                         filename: str) -> None:
    form = valid_form()
    form["online_crt"] = b"not a certificate"
    before = stored(store)
    response = _post(web, client_company.id, form, target=None, names={"online_crt": filename})
    refused(response, 422)
    html = response.get_data(as_text=True)
    assert "<img src=x>" not in html and "etc/passwd" not in html
    assert _errors(response)
    assert stored(store) == before


@pytest.mark.parametrize("field", ["online_crt", "offline_key", "online_password", "nip"])
def test_u27_a_field_sent_twice_is_refused(web: WebClient, store: Store, client_company, pinned,  # noqa: ANN001
                                           field: str) -> None:
    from io import BytesIO

    from werkzeug.datastructures import MultiDict

    web.get(f"/clients/{client_company.id}/certificates/upload")
    form = valid_form()
    payload = MultiDict()
    for name, value in form.items():
        payload.add(name, (BytesIO(value), f"{name}.pem") if isinstance(value, bytes) else value)
    value = form[field]
    payload.add(field, (BytesIO(value), "again.pem") if isinstance(value, bytes) else value)
    before = stored(store)
    response = web.client.post(f"/clients/{client_company.id}/certificates/upload", data=payload,
                               headers={"X-CSRFToken": web.token()}, content_type="multipart/form-data")
    refused(response, 400, "Nieprawidłowe żądanie")
    assert stored(store) == before
