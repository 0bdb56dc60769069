"""KSeF's non-blocking technical warnings (the ``X-System-Warning`` response header), read and explained.

The header does not change the result of the call; it says that something will be refused later (e.g.
``[sig-001]``: a signature the strict XAdES profile, enforced on DEMO and PRD since 16.03.2026, will
refuse). Its format, from the API document (``SystemWarning``): ``[code]: message | [code]: message``,
ASCII-folded. The portal logs every warning (``records.ksef_log``) and shows it to the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from klucznik.text import Text

_ONE = re.compile(r"\[(?P<code>[^\]]+)\]: (?P<message>[^|]+)")


@dataclass(frozen=True)
class SystemWarning:
    """One warning: KSeF's code (``sig-001``) and its own words; ``operation`` is the call that got it."""

    code: str
    message: str
    operation: str = ""

    @property
    def text(self) -> Text:
        """What the warning means for the office, in plain words, with KSeF's own text."""
        known = _EXPLAINED.get(self.code.lower())
        said = f"(KSeF [{self.code}]: {self.message})"
        if known is not None:
            return known + said
        generic = Text(
            "KSeF przekazał ostrzeżenie techniczne: operacja się udała, ale w przyszłości podobne żądanie "
            "może zostać odrzucone.",
            "KSeF sent a technical warning: the operation succeeded, but a similar request may be refused in "
            "the future.",
        )
        return generic + said


_EXPLAINED: dict[str, Text] = {
    "sig-001": Text(
        "KSeF przyjął podpis, ale ostrzega, że nie spełnia on ścisłego profilu XAdES, który KSeF stosuje na "
        "środowiskach DEMO i produkcyjnym: taki podpis zostanie tam odrzucony. Następnym razem podpisz plik "
        "podpisem kwalifikowanym lub pieczęcią w formacie XAdES (otaczanym), bez zmieniania pliku.",
        "KSeF accepted the signature but warns that it does not meet the strict XAdES profile KSeF enforces on "
        "DEMO and production: such a signature will be refused there. Next time sign the file with a "
        "qualified signature or seal in the XAdES (enveloped) format, without changing the file.",
    ),
}


def parse(header: str | None, *, operation: str = "") -> tuple[SystemWarning, ...]:
    """The warnings of one ``X-System-Warning`` value; a value without codes becomes one warning."""
    if not header or not header.strip():
        return ()
    found = tuple(
        SystemWarning(m.group("code").strip(), m.group("message").strip(), operation)
        for m in _ONE.finditer(header)
    )
    return found or (SystemWarning("unknown", header.strip(), operation),)
