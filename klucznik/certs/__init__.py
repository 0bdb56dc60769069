"""KSeF certificates and private keys: reading any upload and checking it against KSeF's rules (no database)."""

from __future__ import annotations

from klucznik.certs.check import check_certificate
from klucznik.certs.check import check_key
from klucznik.certs.check import check_nip
from klucznik.certs.check import check_pair
from klucznik.certs.check import check_set
from klucznik.certs.model import CODES
from klucznik.certs.model import MAX_FILE_SIZE
from klucznik.certs.model import SLOTS
from klucznik.certs.model import CertificateInfo
from klucznik.certs.model import PairInput
from klucznik.certs.model import Problem
from klucznik.certs.model import SetCheck
from klucznik.certs.reading import is_key_encrypted
from klucznik.certs.reading import load_certificate
from klucznik.certs.reading import load_private_key
from klucznik.certs.reading import summarise

__all__ = [
    "CODES",
    "MAX_FILE_SIZE",
    "SLOTS",
    "CertificateInfo",
    "PairInput",
    "Problem",
    "SetCheck",
    "check_certificate",
    "check_key",
    "check_nip",
    "check_pair",
    "check_set",
    "is_key_encrypted",
    "load_certificate",
    "load_private_key",
    "summarise",
]
