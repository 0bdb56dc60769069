"""Bilingual text: every message the domain shows a person exists in Polish and in English.

One type, :class:`Text`, carries both; the web layer picks the language of the page, the console commands
print both (``"pl / en"``), and the JSON contracts keep the pair as ``message_pl`` / ``message_en``. Message
tables are ``Text`` values (or functions that return one), never bare tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("pl", "en")
#: The language of the portal when nothing else is chosen: its users are Polish accountants.
DEFAULT_LANGUAGE = "pl"


@dataclass(frozen=True)
class Text:
    """One message in Polish (``pl``) and English (``en``)."""

    pl: str
    en: str

    def get(self, lang: str) -> str:
        """The message in ``lang`` (anything but ``"en"`` is Polish, the portal's first language)."""
        return self.en if lang == "en" else self.pl

    def format(self, **values: object) -> Text:
        """Both languages with ``{name}`` placeholders filled in."""
        return Text(self.pl.format(**values), self.en.format(**values))

    def both(self, separator: str = " / ") -> str:
        """``"pl / en"``: how the console commands print a message."""
        return f"{self.pl}{separator}{self.en}"

    def __add__(self, other: Text | str) -> Text:
        """``Text`` + ``Text`` (or a string used in both languages), joined by one space."""
        if isinstance(other, str):
            return Text(f"{self.pl} {other}", f"{self.en} {other}")
        return Text(f"{self.pl} {other.pl}", f"{self.en} {other.en}")
