"""Profil Zaufany is explained honestly: its stand-alone legal basis for KSeF ended on 13.02.2026, and a
qualified signature or seal is the dependable way. The wizard never offers it as an equal option."""

from __future__ import annotations

from bs4 import BeautifulSoup

from klucznik.ksef.errors import _CODE_MESSAGES
from klucznik.ksef.errors import _REASON_MESSAGES
from klucznik.ksef.statuses import explain_auth_status


def _text(response) -> str:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser").get_text(" ", strip=True)


def test_the_start_page_says_which_way_is_dependable(web, client_company):
    response = web.get(f"/clients/{client_company.id}/wizard")
    assert response.status_code == 200
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    (notice,) = soup.select("[data-signing-ways]")
    said = notice.get_text(" ", strip=True)
    assert "13 lutego 2026" in said and "pewnym sposobem jest kwalifikowany podpis" in said
    assert "nie jest równorzędną możliwością" in said
    for method in soup.select("section.method"):  # no method recommends Profil Zaufany
        assert "Profil" not in method.get_text(" ", strip=True)


def test_the_method_page_puts_profil_zaufany_last_with_the_warning(web, client_company):
    response = web.get(f"/clients/{client_company.id}/wizard/grant")
    assert response.status_code == 200
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    ways = soup.select("section.step details")
    assert "kwalifikowan" in ways[0].select_one("summary").get_text() and ways[0].has_attr("open")
    last = ways[-1]
    assert "niepewny" in last.select_one("summary").get_text() and not last.has_attr("open")
    assert "13 lutego 2026" in last.select_one("[data-profil-zaufany]").get_text()


def test_in_english_too(web, client_company):
    web.post("/language", data={"lang": "en", "next": "/"})
    said = _text(web.get(f"/clients/{client_company.id}/wizard"))
    assert "13 February 2026" in said and "dependable way" in said


def test_error_texts_recommend_only_a_qualified_signature_or_seal():
    texts = [*_CODE_MESSAGES.values(), *_REASON_MESSAGES.values()]
    texts.append(explain_auth_status(460, "Uwierzytelnianie zakończone niepowodzeniem", ("x",)).text)
    for text in texts:
        assert "zaufan" not in text.pl.lower() and "profil zaufany" not in text.en.lower()
