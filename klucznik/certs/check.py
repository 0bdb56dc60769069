"""The certificate checks of the upload form and of ``klucznik certs check``; pure, no database.

Three entry points, from the smallest to the whole form:

* :func:`check_certificate` / :func:`check_key` check one field in isolation (inline checks);
* :func:`check_pair` checks one slot: certificate, key, password (and the NIP, when given);
* :func:`check_set` checks both slots and the NIP, including that both pairs identify the same
  subject and that files were not swapped between the sections.

Every problem carries exactly one stable code (:data:`~klucznik.certs.model.CODES`), the field the user
must act on, a severity, and a message in Polish and in English. All time-dependent verdicts take ``at``.
"""

from __future__ import annotations

from datetime import datetime

from klucznik import ids
from klucznik.certs.formats import spki
from klucznik.certs.messages import key_mismatch
from klucznik.certs.messages import problem
from klucznik.certs.model import CertificateCheck
from klucznik.certs.model import KeyCheck
from klucznik.certs.model import PairCheck
from klucznik.certs.model import PairInput
from klucznik.certs.model import Problem
from klucznik.certs.model import SetCheck
from klucznik.certs.model import require_slot
from klucznik.certs.reading import read_certificate
from klucznik.certs.reading import read_key
from klucznik.certs.rules import certificate_problems
from klucznik.certs.rules import key_algorithm_problems
from klucznik.certs.swaps import detect_swaps_between_pairs
from klucznik.certs.swaps import different_subjects
from klucznik.certs.swaps import swapped_within_pair
from klucznik.clock import to_utc
from klucznik.errors import ValidationError
from klucznik.text import Text


def check_certificate(
    data: bytes | None, *, slot: str, at: datetime, nip: str | None = None
) -> CertificateCheck:
    """Check one certificate file for ``slot`` on its own (inline check of the .crt field)."""
    require_slot(slot)
    info, problems, notes = read_certificate(data, slot=slot)
    if info is not None:
        problems += certificate_problems(info, slot=slot, at=to_utc(at), nip=nip)
    return CertificateCheck(slot=slot, certificate=info, problems=tuple(problems), notes=tuple(notes))


def check_key(data: bytes | None, *, slot: str, password: str | None = None) -> KeyCheck:
    """Check one key file (and its password, if any) on its own (inline check of the .key field)."""
    require_slot(slot)
    key, problems, notes = read_key(data, password, slot=slot)
    if key is not None:
        problems += key_algorithm_problems(key, slot=slot)
    return KeyCheck(slot=slot, key=key, problems=tuple(problems), notes=tuple(notes))


def check_pair(
    *,
    slot: str,
    crt: bytes | None,
    key: bytes | None,
    password: str | None,
    at: datetime,
    nip: str | None = None,
) -> PairCheck:
    """Check one slot: the certificate, the key, the password, their match (and the NIP when given).

    ``nip`` must already be normalised (10 digits); use :func:`check_nip` for what the user typed.
    """
    require_slot(slot)
    at = to_utc(at)
    swapped = swapped_within_pair(crt, key, slot=slot)
    if swapped is not None:
        return PairCheck(slot=slot, certificate=None, key=None, password=password, problems=(swapped,))
    key_info, key_problems, key_notes = read_key(key, password, slot=slot)
    cert_info, cert_problems, cert_notes = read_certificate(crt, slot=slot, key=key_info)
    problems = list(cert_problems)
    if cert_info is not None:
        problems += certificate_problems(cert_info, slot=slot, at=at, nip=nip)
    problems += key_problems
    if key_info is not None:
        cert_key_refused = any(p.code == "unsupported_key" for p in problems)
        if not cert_key_refused:
            problems += key_algorithm_problems(key_info, slot=slot)
        if cert_info is not None and spki(cert_info.certificate.public_key()) != key_info.public_key_der():
            problems.append(key_mismatch(slot))
    return PairCheck(
        slot=slot,
        certificate=cert_info,
        key=key_info,
        password=password,
        problems=tuple(problems),
        notes=tuple(cert_notes + key_notes),
    )


def check_set(
    *,
    online: PairInput,
    offline: PairInput,
    nip: str | None,
    at: datetime,
    client_nip: str | None = None,
    optional: tuple[str, ...] = (),
) -> SetCheck:
    """Check the whole form: both pairs, the NIP, the same subject in both, and swaps between sections.

    ``client_nip``: the NIP of the client the files are uploaded for; a different NIP typed into the
    form is refused (``nip_mismatch`` on the ``nip`` field). ``optional``: the slots that may be left
    entirely empty (e.g. the offline pair, which can follow later); an empty optional slot is *absent*
    (no problems, nothing stored), but at least one slot must be given.
    """
    nip_value, nip_problems = check_nip(nip)
    if nip_value is not None and client_nip is not None and nip_value != client_nip:
        nip_problems = (_client_nip_mismatch(nip_value, client_nip),)
    absent = tuple(
        slot
        for slot, given in (("online", online), ("offline", offline))
        if slot in optional and not (given.crt or given.key or given.password)
    )
    if len(absent) == 2:  # nothing at all: the first slot is the one to fill
        absent = ("offline",)
    pairs = {
        slot: PairCheck(slot=slot, certificate=None, key=None, password=None, problems=())
        if slot in absent
        else check_pair(slot=slot, crt=given.crt, key=given.key, password=given.password, at=at, nip=nip_value)
        for slot, given in (("online", online), ("offline", offline))
    }
    pairs = detect_swaps_between_pairs(pairs)
    set_problems = list(nip_problems) + different_subjects(pairs)
    return SetCheck(
        nip=nip_value,
        online=pairs["online"],
        offline=pairs["offline"],
        problems=tuple(set_problems),
        absent=absent,
    )


def _client_nip_mismatch(typed: str, client_nip: str) -> Problem:
    """nip_mismatch on the NIP field: the typed NIP is not the client's."""
    return problem(
        "nip_mismatch",
        "nip",
        None,
        Text(
            f"Wpisany NIP {ids.format_nip(typed)} nie jest NIP-em tego klienta ({ids.format_nip(client_nip)}). "
            "Pliki wgrywasz dla tego klienta: wpisz jego NIP albo przejdź do właściwego klienta.",
            f"The NIP entered, {ids.format_nip(typed)}, is not this client's NIP ({ids.format_nip(client_nip)}). "
            "The files are uploaded for this client: enter its NIP or go to the right client.",
        ),
    )


def check_nip(value: str | None) -> tuple[str | None, tuple[Problem, ...]]:
    """Normalise the NIP typed into the form: ``(10 digits, ())`` or ``(None, (nip_invalid,))``."""
    try:
        return ids.normalize_nip(value or ""), ()
    except ValidationError as exc:
        return None, (Problem("nip_invalid", "nip", "error", exc.text),)
