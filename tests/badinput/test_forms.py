"""Forms: the office profile, clients, users, NIPs in every odd spelling, over-long values (issue 9, items 8
and 13; SECURITY.md §3.1 U20). A refusal keeps what was typed and says at the field what to change.
"""

from __future__ import annotations

import pytest

from klucznik.instance.store import Store
from tests.support.badinput import refused
from tests.support.badinput import stored
from tests.support.web import WebClient

VALID_OFFICE = {"name": "Biuro Rachunkowe Test", "nip": "5252955037", "ksef_environment": "test", "sandbox_url": ""}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("name", "B" * 100_000, "Pole jest za długie"),
        ("name", "B" * 10_001, "Pole jest za długie"),
        ("name", "B" * 301, "najwyżej 300 znaków"),
        ("name", "   ", "Wpisz nazwę biura"),
        ("sandbox_url", "http://" + "a" * 600, "najwyżej 500 znaków"),
        ("nip", "1" * 5000, "o wiele więcej znaków"),
        ("nip", "５２５２９５５０３７", "tylko cyfry 0–9"),
        ("nip", "٥٢٥٢٩٥٥٠٣٧", "tylko cyfry 0–9"),
        ("nip", "5252955038", "błędną cyfrę kontrolną"),
        ("nip", "0000000000", "błędną cyfrę kontrolną"),
        ("nip", "52529550", "NIP ma 10 cyfr"),
        ("nip", "525295503x", "NIP ma 10 cyfr"),
        ("ksef_environment", "production", "Wybierz środowisko KSeF"),
        ("ksef_environment", "sandbox", "Podaj adres piaskownicy"),
    ],
)
def test_office_profile_refuses_bad_values(web: WebClient, store: Store, field: str, value: str, fragment: str) -> None:
    before = stored(store)
    response = web.post("/office", {**VALID_OFFICE, field: value})
    refused(response, (400, 422), fragment)
    assert stored(store) == before


def test_office_profile_with_limits_is_saved(web: WebClient) -> None:
    response = web.post("/office", {**VALID_OFFICE, "name": "B" * 300})
    assert response.status_code == 200
    assert "B" * 300 in response.get_data(as_text=True)


VALID_CLIENT = {"nip": "526-104-08-28", "name": "Kowalski Sp. z o.o.", "email": "biuro@kowalski.pl", "notes": ""}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("name", "", "Wpisz nazwę firmy"),
        ("name", " \t\n ", "Wpisz nazwę firmy"),
        ("name", "N" * 301, "najwyżej 300 znaków"),
        ("name", "N" * 20_000, "Pole jest za długie"),
        ("notes", "n" * 5001, "najwyżej 5000 znaków"),
        ("email", "biuro@", "To nie wygląda na adres e-mail"),
        ("email", "a b@c.pl", "To nie wygląda na adres e-mail"),
        ("email", "x@" + "a" * 260 + ".pl", "To nie wygląda na adres e-mail"),
        ("email", "biuro@@x.pl", "To nie wygląda na adres e-mail"),
        ("nip", "", "Wpisz NIP firmy"),
        ("nip", "PL", "Wpisz NIP firmy"),
        ("nip", "526-104-08-29", "błędną cyfrę kontrolną"),
        ("nip", "５２６１０４０８２８", "tylko cyfry 0–9"),
        ("nip", "5261040828\x00", "NIP ma 10 cyfr"),
        ("nip", "526 104 08 28 99", "NIP ma 10 cyfr"),
    ],
)
@pytest.mark.parametrize("action", ["new", "edit"])
def test_client_form_refuses_bad_values_and_keeps_the_rest(web: WebClient, store: Store, client_company,  # noqa: ANN001
                                                           field: str, value: str, fragment: str, action: str) -> None:
    before = stored(store)
    url = "/clients/new" if action == "new" else f"/clients/{client_company.id}/edit"
    data = {**VALID_CLIENT, "nip": "6852332948" if action == "new" else VALID_CLIENT["nip"], field: value}
    response = web.post(url, data)
    refused(response, (400, 422), fragment)
    if response.status_code == 422 and field != "name":
        assert 'value="Kowalski Sp. z o.o."' in response.get_data(as_text=True)  # what was typed stays
    assert stored(store) == before


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "\" onmouseover=\"alert(1)", "{{ 7*7 }}",
                                  "Robert'); DROP TABLE clients;--"])
def test_hostile_client_names_are_stored_as_text_and_shown_escaped(web: WebClient, store: Store, name: str) -> None:
    response = web.post("/clients/new", {**VALID_CLIENT, "name": name})
    assert response.status_code == 303
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    assert name not in page or name.startswith(("{{", "Robert"))
    assert "49" not in page.split("<h1>", 1)[1].split("</h1>", 1)[0]
    listing = web.get("/clients").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in listing and '" onmouseover="' not in listing
