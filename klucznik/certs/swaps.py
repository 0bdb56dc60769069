"""Files in the wrong place: a key and a certificate exchanged within a section, the two sections exchanged,
or their keys exchanged — and two sections whose certificates name different subjects.

Swaps are recognised after each section was checked on its own, and replace the section's generic problem
(``wrong_slot``, ``key_mismatch``) by the one message that tells the user what to move where.
"""

from __future__ import annotations

from dataclasses import replace

from klucznik.certs.formats import holds_certificate
from klucznik.certs.formats import holds_key
from klucznik.certs.formats import spki
from klucznik.certs.messages import problem
from klucznik.certs.model import MAX_FILE_SIZE
from klucznik.certs.model import PairCheck
from klucznik.certs.model import Problem
from klucznik.text import Text


def swapped_within_pair(crt: bytes | None, key: bytes | None, *, slot: str) -> Problem | None:
    """files_swapped when the key sits in the certificate field and the certificate in the key field."""
    if not crt or not key or len(crt) > MAX_FILE_SIZE or len(key) > MAX_FILE_SIZE:
        return None
    if holds_key(crt) and not holds_certificate(crt) and holds_certificate(key) and not holds_key(key):
        return problem(
            "files_swapped",
            "crt",
            slot,
            Text(
                "Pliki są zamienione: w polu certyfikatu jest klucz prywatny, a w polu klucza — certyfikat. Wgraj plik "
                ".crt jako certyfikat, a plik .key jako klucz.",
                "The files are swapped: the certificate field holds the private key and the key field holds the "
                "certificate. Upload the .crt file as the certificate and the .key file as the key.",
            ),
        )
    return None


def detect_swaps_between_pairs(pairs: dict[str, PairCheck]) -> dict[str, PairCheck]:
    """Replace wrong_slot/key_mismatch in both slots by files_swapped when the sections were exchanged."""
    online, offline = pairs["online"], pairs["offline"]
    codes_on = {p.code for p in online.problems}
    codes_off = {p.code for p in offline.problems}
    if "wrong_slot" in codes_on and "wrong_slot" in codes_off:
        pairs = {
            slot: _replace_code(pair, "wrong_slot", _sections_swapped(slot)) for slot, pair in pairs.items()
        }
    elif (
        "key_mismatch" in codes_on
        and "key_mismatch" in codes_off
        and online.certificate
        and offline.certificate
        and online.key
        and offline.key
        and spki(online.certificate.certificate.public_key()) == offline.key.public_key_der()
        and spki(offline.certificate.certificate.public_key()) == online.key.public_key_der()
    ):
        pairs = {
            slot: _replace_code(pair, "key_mismatch", _keys_swapped(slot)) for slot, pair in pairs.items()
        }
    return pairs


def _replace_code(pair: PairCheck, code: str, new: Problem) -> PairCheck:
    """``pair`` with its problem ``code`` replaced by ``new``."""
    problems = tuple(new if p.code == code else p for p in pair.problems)
    return replace(pair, problems=problems)


def _sections_swapped(slot: str) -> Problem:
    """files_swapped: the online certificate is in the offline section and vice versa."""
    return problem(
        "files_swapped",
        "crt",
        slot,
        Text(
            "Certyfikaty online i offline są zamienione miejscami: wgraj certyfikat „(uwierzytelnienie)” w sekcji "
            "online, a certyfikat „(offline)” w sekcji offline (razem z ich kluczami).",
            'The online and offline certificates are swapped: put the "(uwierzytelnienie)" certificate in the online '
            'section and the "(offline)" one in the offline section (each with its key).',
        ),
    )


def _keys_swapped(slot: str) -> Problem:
    """files_swapped: each section holds the other section's key."""
    return problem(
        "files_swapped",
        "key",
        slot,
        Text(
            "Klucze są zamienione między sekcjami: klucz z tej sekcji pasuje do certyfikatu z drugiej. Zamień pliki "
            ".key miejscami (hasła też).",
            "The keys are swapped between the sections: this section's key belongs to the other section's "
            "certificate. Exchange the .key files (and their passwords).",
        ),
    )


def different_subjects(pairs: dict[str, PairCheck]) -> list[Problem]:
    """nip_mismatch when the online and offline certificates identify different subjects."""
    online, offline = pairs["online"].certificate, pairs["offline"].certificate
    if online is None or offline is None or online.identity is None or offline.identity is None:
        return []
    if (online.identity.type, online.identity.value) == (offline.identity.type, offline.identity.value):
        return []
    already = any(p.code == "nip_mismatch" for pair in pairs.values() for p in pair.problems)
    if already:
        return []
    return [
        problem(
            "nip_mismatch",
            "crt",
            "offline",
            Text(
                f"Certyfikaty online i offline należą do różnych podmiotów ({online.identity.type} {online.identity.shown} "
                f"i {offline.identity.type} {offline.identity.shown}). Obie pary muszą być wystawione dla tego samego "
                "podmiotu.",
                f"The online and offline certificates belong to different subjects ({online.identity.type} "
                f"{online.identity.shown} and {offline.identity.type} {offline.identity.shown}). Both pairs must be "
                "issued to the same subject.",
            ),
        )
    ]
