"""Every UI message exists in Polish and English: each gettext msgid in the code has a Polish translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "translations" / "pl" / "LC_MESSAGES" / "messages.po"
METHOD_MAP = [("app.py", "python"), ("blueprints/**.py", "python"), ("templates/**.html", "jinja2")]


def _extracted() -> set[str | tuple[str, ...]]:
    ids: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), METHOD_MAP):
        ids.add(message if isinstance(message, str) else tuple(message))
    return ids


def test_every_message_has_a_polish_translation() -> None:
    with CATALOG.open("rb") as fh:
        catalog = read_po(fh)
    translated = {}
    for m in catalog:
        if m.id:
            key = m.id if isinstance(m.id, str) else tuple(m.id)
            translated[key] = m.string
    extracted = _extracted()
    assert len(extracted) > 100
    missing = sorted(str(i) for i in extracted if not translated.get(i) or (
        isinstance(translated[i], tuple) and not all(translated[i])))
    assert missing == []


def test_the_catalog_has_no_duplicates_or_fuzzy_entries() -> None:
    with CATALOG.open("rb") as fh:
        catalog = read_po(fh)
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    ids = [line for line in CATALOG.read_text("utf-8").splitlines() if line.startswith("msgid ")]
    assert len(ids) == len(set(ids))
