"""File formats: what the bytes of an uploaded certificate or key file are, before any rule applies.

PEM blocks (certificates, PKCS#7 bundles, keys of every label), DER certificates and keys, PKCS#12 bundles,
UTF-8 BOMs and UTF-16 text saved by Windows editors, and files that are something else altogether (a PDF,
a picture) — recognised here so that the messages can name what was uploaded.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed448
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from klucznik.text import Text

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
KEY_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
OTHER_KEY_LABELS = {b"DSA PRIVATE KEY", b"OPENSSH PRIVATE KEY"}
PKCS7_LABELS = {b"PKCS7", b"CMS"}
_OID_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")

_MAGIC_HINTS = (
    (b"\x89PNG", Text("obraz PNG", "a PNG image")),
    (b"\xff\xd8\xff", Text("obraz JPEG", "a JPEG image")),
    (b"%PDF", Text("dokument PDF", "a PDF document")),
    (
        b"PK\x03\x04",
        Text("archiwum ZIP (np. dokument Word lub Excel)", "a ZIP archive (e.g. a Word or Excel file)"),
    ),
    (b"<?xml", Text("plik XML", "an XML file")),
)


def normalise_text(data: bytes) -> bytes:
    """Strip a UTF-8 BOM and re-encode UTF-16 text (some Windows editors save PEM files that way)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("ascii")
        except (UnicodeError, ValueError):
            return data
    return data


def pem_blocks(text: bytes) -> list[tuple[bytes, bytes]]:
    """Every ``-----BEGIN X-----`` … ``-----END X-----`` block as ``(label, block bytes)``."""
    if b"-----BEGIN " not in text:
        return []
    return [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(text)]


def der_certificates(text: bytes) -> list[x509.Certificate]:
    """A DER certificate or a DER PKCS#7 bundle of certificates, else ``[]``."""
    if not text.startswith(b"\x30"):
        return []
    try:
        return [x509.load_der_x509_certificate(text)]
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(text))
    except (ValueError, UnsupportedAlgorithm):
        return []


def looks_like_der_key(text: bytes) -> bool:
    """True when ``text`` is a DER private key (plain or encrypted)."""
    if not text.startswith(b"\x30"):
        return False
    try:
        serialization.load_der_private_key(text, password=None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def holds_key(data: bytes) -> bool:
    """True when the file is (or contains) a private key."""
    text = normalise_text(data)
    blocks = pem_blocks(text)
    if blocks:
        return any(label in KEY_LABELS | OTHER_KEY_LABELS for label, _ in blocks)
    return looks_like_der_key(text)


def holds_certificate(data: bytes) -> bool:
    """True when the file is (or contains) a certificate."""
    text = normalise_text(data)
    blocks = pem_blocks(text)
    if blocks:
        return any(label in CERT_LABELS for label, _ in blocks)
    return bool(der_certificates(text))


def is_pkcs12(text: bytes) -> bool:
    """A PKCS#12 (.p12/.pfx) file: SEQUENCE { INTEGER 3, ContentInfo { pkcs7-data ... } }."""
    if not text.startswith(b"\x30") or len(text) < 16:
        return False
    length_octets = text[1] & 0x7F if text[1] & 0x80 else 0
    body = text[2 + length_octets :]
    return body.startswith(b"\x02\x01\x03\x30") and _OID_PKCS7_DATA in body[:24]


def garbage_hint(text: bytes) -> Text | None:
    """What an unreadable file looks like (PNG, PDF, ZIP, ...), for the message."""
    for magic, hint in _MAGIC_HINTS:
        if text.startswith(magic):
            return hint
    return None


def spki(public_key: object) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_algorithm(key: object) -> str:
    """A short label: ``EC P-256``, ``RSA 2048``, ``Ed25519``, ..."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__
