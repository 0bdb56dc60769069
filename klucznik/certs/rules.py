"""The rules a loaded certificate and key must meet for their slot: algorithm, KSeF type, validity, issuer,
identity. Every time-dependent verdict takes the explicit moment ``at``.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from klucznik import ids
from klucznik.certs.messages import problem
from klucznik.certs.messages import unsupported_algorithm
from klucznik.certs.model import EXPIRY_WARNING
from klucznik.certs.model import MIN_RSA_BITS
from klucznik.certs.model import SECTION_TITLES
from klucznik.certs.model import SLOT_TYPES
from klucznik.certs.model import CertificateInfo
from klucznik.certs.model import KeyInfo
from klucznik.certs.model import Problem
from klucznik.clock import date_en
from klucznik.clock import date_pl
from klucznik.text import Text


def certificate_problems(info: CertificateInfo, *, slot: str, at: datetime, nip: str | None) -> list[Problem]:
    """Every rule about one certificate in ``slot``: key algorithm, KSeF type, validity, issuer, identity."""
    problems: list[Problem] = []
    if not algorithm_supported(info.certificate.public_key()):
        problems.append(unsupported_algorithm("crt", slot, info.key_algorithm))
    problems += _type_problems(info, slot)
    problems += _validity_problems(info, slot, at)
    if not info.ksef_issuer:
        problems.append(_foreign_issuer(info, slot))
    problems += _identity_problems(info, slot, nip)
    return problems


def _type_problems(info: CertificateInfo, slot: str) -> list[Problem]:
    """not_ksef_type / wrong_slot from the keyUsage of the certificate."""
    if info.ksef_type is None:
        return [
            problem(
                "not_ksef_type",
                "crt",
                slot,
                Text(
                    "To nie jest certyfikat KSeF: nie ma przeznaczenia „uwierzytelnienie” ani „offline” (pole keyUsage). "
                    "Wgraj certyfikat pobrany z Aplikacji Podatnika KSeF (Certyfikaty → pobierz .crt).",
                    'This is not a KSeF certificate: it has neither the "authentication" nor the "offline" purpose '
                    "(keyUsage). Upload the certificate downloaded from the KSeF taxpayer application "
                    "(Certificates → download .crt).",
                ),
            )
        ]
    if info.ksef_type != SLOT_TYPES[slot]:
        other = "offline" if slot == "online" else "online"
        return [
            problem(
                "wrong_slot",
                "crt",
                slot,
                Text(
                    f"To jest certyfikat {other} — wgraj go w sekcji „{SECTION_TITLES[other].pl}”. Tutaj potrzebny "
                    f"jest certyfikat {slot}.",
                    f'This is the {other} certificate — upload it in the "{SECTION_TITLES[other].en}" section. '
                    f"This section needs the {slot} certificate.",
                ),
            )
        ]
    return []


def _validity_problems(info: CertificateInfo, slot: str, at: datetime) -> list[Problem]:
    """expired (error), not_yet_valid (warning), expires_soon (warning)."""
    if at > info.not_after:
        return [
            problem(
                "expired",
                "crt",
                slot,
                Text(
                    f"Certyfikat wygasł {date_pl(info.not_after)}. Wygeneruj nowy certyfikat w Aplikacji Podatnika KSeF "
                    "i wgraj nowe pliki.",
                    f"The certificate expired on {date_en(info.not_after)}. Request a new certificate in the KSeF "
                    "taxpayer application and upload the new files.",
                ),
            )
        ]
    if at < info.not_before:
        return [
            problem(
                "not_yet_valid",
                "crt",
                slot,
                Text(
                    f"Certyfikat będzie ważny dopiero od {date_pl(info.not_before)}. Możesz go wgrać teraz, ale KSeF "
                    "przyjmie go dopiero od tej daty.",
                    f"The certificate becomes valid only on {date_en(info.not_before)}. You can upload it now, but KSeF "
                    "will accept it only from that date.",
                ),
                severity="warning",
            )
        ]
    if info.not_after - at <= EXPIRY_WARNING:
        days = max((info.not_after - at).days, 0)
        return [
            problem(
                "expires_soon",
                "crt",
                slot,
                Text(
                    f"Certyfikat wygasa {date_pl(info.not_after)} (za {days} dni). Zawnioskuj wcześniej o nowy w "
                    "Aplikacji Podatnika KSeF.",
                    f"The certificate expires on {date_en(info.not_after)} (in {days} days). Request a new one in the "
                    "KSeF taxpayer application in good time.",
                ),
                severity="warning",
            )
        ]
    return []


def _foreign_issuer(info: CertificateInfo, slot: str) -> Problem:
    """not_ksef_issuer: an error for the offline slot (KOD II needs a KSeF certificate), a warning online."""
    issuer = info.issuer_common_name or info.issuer
    if slot == "offline":
        return problem(
            "not_ksef_issuer",
            "crt",
            slot,
            Text(
                f"Ten certyfikat wystawił „{issuer}”, a nie KSeF. Do kodu weryfikującego wystawcę (offline) nadaje się "
                "tylko certyfikat KSeF typu Offline z Aplikacji Podatnika KSeF.",
                f'This certificate was issued by "{issuer}", not by KSeF. Only a KSeF Offline certificate from the '
                "KSeF taxpayer application can sign the issuer verification code (offline).",
            ),
        )
    return problem(
        "not_ksef_issuer",
        "crt",
        slot,
        Text(
            f"Ten certyfikat wystawił „{issuer}”, a nie KSeF. Zwykle wgrywa się tu certyfikat KSeF; jeśli to nie "
            "pomyłka, sprawdź, czy KSeF przyjmie go do logowania.",
            f'This certificate was issued by "{issuer}", not by KSeF. Normally a KSeF certificate goes here; if this '
            "is intended, check that KSeF accepts it for logging in.",
        ),
        severity="warning",
    )


def _identity_problems(info: CertificateInfo, slot: str, nip: str | None) -> list[Problem]:
    """identity_person (warning) for a PESEL; nip_mismatch when the certificate's NIP is not the company's."""
    identity = info.identity
    if identity is None:
        if nip is None:
            return []
        return [
            problem(
                "nip_mismatch",
                "crt",
                slot,
                Text(
                    "Certyfikat nie zawiera ani NIP, ani PESEL, więc nie da się potwierdzić, że należy do tej firmy. "
                    "Wgraj certyfikat KSeF wystawiony dla firmy lub osoby uprawnionej.",
                    "The certificate names neither a NIP nor a PESEL, so it cannot be confirmed to belong to this company. "
                    "Upload a KSeF certificate issued to the company or to an authorised person.",
                ),
            )
        ]
    if identity.type == "PESEL":
        return [
            problem(
                "identity_person",
                "crt",
                slot,
                Text(
                    f"Certyfikat identyfikuje osobę (PESEL {identity.shown}), nie firmę. To jest dopuszczalne: KSeF "
                    "sprawdzi przy logowaniu, czy ta osoba ma uprawnienia do tego NIP.",
                    f"The certificate identifies a person (PESEL {identity.shown}), not the company. That is allowed: at "
                    "login KSeF checks whether this person holds permissions for this NIP.",
                ),
                severity="warning",
            )
        ]
    if nip is not None and identity.value != nip:
        return [
            problem(
                "nip_mismatch",
                "crt",
                slot,
                Text(
                    f"Certyfikat jest wystawiony dla NIP {ids.format_nip(identity.value)}, a firma ma NIP "
                    f"{ids.format_nip(nip)}. Wgraj certyfikat tej firmy albo popraw NIP.",
                    f"The certificate was issued for NIP {ids.format_nip(identity.value)}, but the company's NIP is "
                    f"{ids.format_nip(nip)}. Upload this company's certificate or correct the NIP.",
                ),
            )
        ]
    return []


def key_algorithm_problems(key: KeyInfo, *, slot: str) -> list[Problem]:
    """unsupported_key when the key is not EC P-256 or RSA ≥ 2048."""
    if algorithm_supported(key.private_key):
        return []
    return [unsupported_algorithm("key", slot, key.algorithm)]


def algorithm_supported(key: object) -> bool:
    """EC P-256 or RSA with at least 2048 bits (what KSeF certifies)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return isinstance(key.curve, ec.SECP256R1)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return key.key_size >= MIN_RSA_BITS
    return False
