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
