"""The KSeF login file (``AuthTokenRequest``): build it, sign it (XAdES), and check a file signed elsewhere."""

from __future__ import annotations

from klucznik.xades.messages import MESSAGES
from klucznik.xades.messages import PROBLEM_CODES
from klucznik.xades.messages import Problem
from klucznik.xades.messages import XadesError
from klucznik.xades.names import CHALLENGE_RE
from klucznik.xades.names import MAX_BYTES
from klucznik.xades.request import build_auth_token_request
from klucznik.xades.sign import SigningOptions
from klucznik.xades.sign import sign_auth_token_request
from klucznik.xades.sign import sign_xades
from klucznik.xades.signer import Signer
from klucznik.xades.verify import CheckResult
from klucznik.xades.verify import check_signed_request

__all__ = [
    "CHALLENGE_RE",
    "MAX_BYTES",
    "MESSAGES",
    "PROBLEM_CODES",
    "CheckResult",
    "Problem",
    "Signer",
    "SigningOptions",
    "XadesError",
    "build_auth_token_request",
    "check_signed_request",
    "sign_auth_token_request",
    "sign_xades",
]
