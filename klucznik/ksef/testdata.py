"""The TEST environment's helpers (``/testdata/*``): link a person to a company, simulate paper grants.

They exist only on KSeF TEST and in the project's sandbox; the portal uses them in demos and tests, never
against production.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from klucznik.ksef.models import format_datetime


class TestData:
    """``/testdata/*`` of an environment; ``call`` is :meth:`KsefClient.call` of a client of that environment,
    ``auth`` gives the session's bearer authentication for the helpers that act as the authenticated subject."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, call: Callable[..., Any], auth: Callable[[], Any] | None = None) -> None:
        self.call = call
        self.auth = auth

    def person(
        self,
        *,
        nip: str,
        pesel: str,
        description: str = "Osoba testowa",
        is_bailiff: bool = False,
        is_deceased: bool = False,
    ) -> None:
        """TEST only: ``POST /testdata/person`` links a PESEL to a NIP as its owner."""
        body = {
            "nip": nip,
            "pesel": pesel,
            "isBailiff": is_bailiff,
            "description": description,
            "isDeceased": is_deceased,
        }
        self.call("POST", "/testdata/person", idempotent=False, json=body)

    def remove_person(self, *, nip: str) -> None:
        """TEST only: ``POST /testdata/person/remove``."""
        self.call("POST", "/testdata/person/remove", idempotent=True, json={"nip": nip})

    def grant(
        self,
        *,
        context_nip: str,
        identifier_type: str,
        identifier: str,
        permissions: Iterable[str],
        description: str = "Uprawnienie testowe",
    ) -> None:
        """TEST only: ``POST /testdata/permissions`` (simulates a paper ZAW-FA grant)."""
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": {"type": identifier_type, "value": identifier},
            "permissions": [{"description": description, "permissionType": p} for p in permissions],
        }
        self.call("POST", "/testdata/permissions", idempotent=False, json=body)

    def revoke(self, *, context_nip: str, identifier_type: str, identifier: str) -> None:
        """TEST only: ``POST /testdata/permissions/revoke``."""
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": {"type": identifier_type, "value": identifier},
        }
        self.call("POST", "/testdata/permissions/revoke", idempotent=True, json=body)

    def shorten_certificate(self, serial_number: str, *, valid_to: datetime) -> None:
        """TEST only (API 2.7): ``PUT /testdata/certificates/{serialNumber}`` ends one of the authenticated
        subject's KSeF certificates at ``valid_to`` (no later than its current end) to simulate expiry."""
        if self.auth is None:
            raise RuntimeError("shorten_certificate needs an authenticated client")
        self.call(
            "PUT",
            f"/testdata/certificates/{serial_number}",
            idempotent=True,
            json={"validTo": format_datetime(valid_to)},
            auth=self.auth(),
        )
