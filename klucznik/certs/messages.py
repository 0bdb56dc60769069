"""The messages of the certificate checks: one function per situation, each a :class:`Problem`.

Every message says in plain words what is wrong and what to do, in Polish and in English; a message that
several rules share lives here (rules with a message of their own build it where the rule is).
"""

from __future__ import annotations

from klucznik.certs.formats import CERT_LABELS
from klucznik.certs.model import CODES
from klucznik.certs.model import MAX_FILE_SIZE
from klucznik.certs.model import Problem
from klucznik.text import Text


def problem(code: str, field: str, slot: str | None, text: Text, *, severity: str = "error") -> Problem:
    """A :class:`Problem` (asserts the code is one of :data:`CODES`)."""
    assert code in CODES, code
    return Problem(code=code, field=field, severity=severity, text=text, slot=slot)


def not_a_certificate(slot: str | None, hint: Text | None) -> Problem:
    """not_a_certificate, naming what the file seems to be when we can tell."""
    seems_pl = f" (wygląda na: {hint.pl})" if hint else ""
    seems_en = f" (it looks like {hint.en})" if hint else ""
    return problem(
        "not_a_certificate",
        "crt",
        slot,
        Text(
            f"Ten plik nie jest certyfikatem{seems_pl}. Wgraj plik .crt pobrany z Aplikacji Podatnika KSeF.",
            f"This file is not a certificate{seems_en}. Upload the .crt file downloaded from the KSeF taxpayer "
            "application.",
        ),
    )


def key_in_certificate_field(slot: str | None) -> Problem:
    """not_a_certificate for a private key uploaded as the certificate."""
    return problem(
        "not_a_certificate",
        "crt",
        slot,
        Text(
            "To jest klucz prywatny, a nie certyfikat. Wgraj go w polu klucza (.key), a tutaj plik .crt.",
            "This is a private key, not a certificate. Upload it in the key (.key) field and put the .crt file here.",
        ),
    )


def certificate_in_key_field(slot: str | None) -> Problem:
    """not_a_private_key for a certificate uploaded as the key."""
    return problem(
        "not_a_private_key",
        "key",
        slot,
        Text(
            "To jest certyfikat, a nie klucz prywatny. Wgraj go w polu certyfikatu (.crt), a tutaj plik .key.",
            "This is a certificate, not a private key. Upload it in the certificate (.crt) field and put the .key "
            "file here.",
        ),
    )


def pem_without_key(labels: set[bytes], slot: str | None) -> Problem:
    """not_a_private_key for a PEM file with no private key block."""
    if labels & CERT_LABELS:
        return certificate_in_key_field(slot)
    if b"PUBLIC KEY" in labels:
        return problem(
            "not_a_private_key",
            "key",
            slot,
            Text(
                "To jest klucz publiczny, a potrzebny jest klucz prywatny: plik .key zapisany przy wnioskowaniu o "
                "certyfikat.",
                "This is a public key; the private key is needed: the .key file saved when the certificate was "
                "requested.",
            ),
        )
    return not_a_private_key(slot, None)


def not_a_private_key(slot: str | None, hint: Text | None) -> Problem:
    """not_a_private_key for an unreadable key file."""
    seems_pl = f" (wygląda na: {hint.pl})" if hint else ""
    seems_en = f" (it looks like {hint.en})" if hint else ""
    return problem(
        "not_a_private_key",
        "key",
        slot,
        Text(
            f"Ten plik nie jest kluczem prywatnym{seems_pl}. Wgraj plik .key zapisany przy wnioskowaniu o certyfikat "
            "w Aplikacji Podatnika KSeF.",
            f"This file is not a private key{seems_en}. Upload the .key file saved when the certificate was requested "
            "in the KSeF taxpayer application.",
        ),
    )


def pkcs12_problem(field: str, slot: str | None) -> Problem:
    """pkcs12_file, with how to get separate .crt and .key files."""
    return problem(
        "pkcs12_file",
        field,
        slot,
        Text(
            "To jest plik PKCS#12 (.p12/.pfx), który łączy certyfikat i klucz. KSeF wydaje osobne pliki .crt i .key — "
            "wgraj je z Aplikacji Podatnika KSeF. Jeśli masz tylko ten plik, informatyk wyodrębni je poleceniami: "
            "openssl pkcs12 -in plik.p12 -clcerts -nokeys -out certyfikat.crt oraz "
            "openssl pkcs12 -in plik.p12 -nocerts -out klucz.key.",
            "This is a PKCS#12 file (.p12/.pfx) that bundles the certificate and the key. KSeF issues separate .crt "
            "and .key files — upload those from the KSeF taxpayer application. If you only have this file, IT staff "
            "can extract them with: openssl pkcs12 -in file.p12 -clcerts -nokeys -out certificate.crt and "
            "openssl pkcs12 -in file.p12 -nocerts -out key.key.",
        ),
    )


def unsupported_algorithm(field: str, slot: str | None, algorithm: str) -> Problem:
    """unsupported_key for a key type KSeF does not certify."""
    return problem(
        "unsupported_key",
        field,
        slot,
        Text(
            f"Klucz typu {algorithm} nie jest obsługiwany: KSeF wydaje certyfikaty tylko dla kluczy EC P-256 lub RSA "
            "(co najmniej 2048 bitów). Wgraj pliki certyfikatu KSeF wygenerowane w Aplikacji Podatnika KSeF.",
            f"A {algorithm} key is not supported: KSeF issues certificates only for EC P-256 or RSA (at least 2048 "
            "bits) keys. Upload the KSeF certificate files generated in the KSeF taxpayer application.",
        ),
    )


def unsupported_key_format(slot: str | None) -> Problem:
    """unsupported_key for a key whose algorithm cannot be loaded at all."""
    return problem(
        "unsupported_key",
        "key",
        slot,
        Text(
            "Tego rodzaju klucza nie da się użyć: KSeF przyjmuje klucze EC P-256 lub RSA (co najmniej 2048 bitów).",
            "This kind of key cannot be used: KSeF takes EC P-256 or RSA (at least 2048 bits) keys.",
        ),
    )


def unsupported_encryption(slot: str | None) -> Problem:
    """unsupported_key for a key encrypted with a method we cannot decrypt."""
    return problem(
        "unsupported_key",
        "key",
        slot,
        Text(
            "Klucz jest zaszyfrowany metodą, której nie obsługujemy. Zapisz go ponownie z szyfrowaniem AES, np. "
            "poleceniem: openssl pkcs8 -topk8 -v2 aes-256-cbc -in stary.key -out nowy.key, i wgraj nowy plik.",
            "The key is encrypted with a method we do not support. Save it again with AES encryption, e.g. with "
            "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key, and upload the new file.",
        ),
    )


def key_mismatch(slot: str) -> Problem:
    """key_mismatch: the key belongs to another certificate."""
    return problem(
        "key_mismatch",
        "key",
        slot,
        Text(
            "Ten klucz nie pasuje do certyfikatu: każdy certyfikat ma własny plik .key zapisany przy wnioskowaniu. "
            "Wgraj klucz zapisany razem z tym certyfikatem.",
            "This key does not belong to the certificate: each certificate has its own .key file saved when it was "
            "requested. Upload the key saved together with this certificate.",
        ),
    )


def limit_problem(data: bytes | None, *, field: str, slot: str | None) -> Problem | None:
    """empty_file / file_too_large before any parsing."""
    if not data or not data.strip():
        what_pl, what_en = (
            ("certyfikatu (.crt)", "certificate (.crt)")
            if field == "crt"
            else ("klucza (.key)", "key (.key)")
        )
        return problem(
            "empty_file",
            field,
            slot,
            Text(
                f"Plik {what_pl} jest pusty. Wybierz właściwy plik; jeśli był pobierany, pobierz go ponownie.",
                f"The {what_en} file is empty. Choose the right file; if it was downloaded, download it again.",
            ),
        )
    if len(data) > MAX_FILE_SIZE:
        return problem(
            "file_too_large",
            field,
            slot,
            Text(
                # Only the limit + 1 byte is read, so the real size is unknown: state the limit, not a size.
                f"Plik jest większy niż {MAX_FILE_SIZE // 1024} KiB, a pliki certyfikatu i klucza KSeF mają około "
                "1 KiB. To chyba nie ten plik — wybierz plik .crt lub .key.",
                f"The file is larger than {MAX_FILE_SIZE // 1024} KiB, while KSeF certificate and key files are about "
                "1 KiB. This is probably the wrong file — choose the .crt or .key file.",
            ),
        )
    return None
