"""A KSeF client for the office's environment, and the client's stored session tokens put to use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from klucznik.authorize.requests import AuthRequest
from klucznik.authorize.requests import WizardError
from klucznik.instance.store import Store
from klucznik.ksef.client import KsefClient
from klucznik.ksef.environments import base_url_for
from klucznik.ksef.models import AuthTokens
from klucznik.ksef.models import TokenInfo
from klucznik.records import office
from klucznik.records import tokens as token_records
from klucznik.text import Text


def ksef_client_for(db: Database, **kwargs: Any) -> KsefClient:
    """A client for the office's configured KSeF environment (``sandbox`` uses the office's sandbox URL)."""
    profile = office.get_office(db)
    return KsefClient(base_url_for(profile.ksef_environment, profile.sandbox_url or None), **kwargs)


def current_environment(db: Database) -> str:
    """The KSeF environment the office works with now (what every new credential and token belongs to)."""
    return office.get_office(db).ksef_environment


def active_tokens(db: Database, client_id: int) -> AuthTokens | None:
    """The client's stored KSeF tokens as the client library holds them (``None`` if there are none).

    Tokens obtained in another KSeF environment than the current one are never handed out:
    :class:`~klucznik.records.office.EnvironmentMismatch`.
    """
    stored = token_records.active_tokens(db, client_id)
    if stored is None:
        return None
    environment = current_environment(db)
    if stored.ksef_environment is not None and stored.ksef_environment != environment:
        raise office.environment_mismatch(
            stored=stored.ksef_environment,
            current=environment,
            what=Text("Sesja KSeF tej firmy", "This company's KSeF session"),
        )
    return AuthTokens(
        TokenInfo(stored.access_token, stored.access_valid_until),
        TokenInfo(stored.refresh_token, stored.refresh_valid_until),
    )


def save_tokens(
    db: Database, *, client_id: int, context_nip: str, reference: str | None, tokens: AuthTokens, at: datetime
) -> int:
    """Store redeemed ``tokens`` as the client's active pair (inside ``store.write()``)."""
    return token_records.store_tokens(
        db,
        client_id=client_id,
        context_nip=context_nip,
        reference=reference,
        tokens=token_records.StoredTokens(
            tokens.access_token.token,
            tokens.access_token.valid_until,
            tokens.refresh_token.token,
            tokens.refresh_token.valid_until,
            current_environment(db),
        ),
        at=at,
    )


def client_with_tokens(store: Store, request: AuthRequest, ksef: KsefClient) -> KsefClient:
    """``ksef`` with the client's stored tokens; :class:`WizardError` when there are none."""
    with store.connect() as db:
        tokens = active_tokens(db, request.client_id)
    if tokens is None:
        raise WizardError(
            Text(
                "Brak tokenów KSeF dla tej firmy. Zaloguj się ponownie podpisanym plikiem.",
                "No KSeF tokens for this company. Log in again with a signed file.",
            ),
            code="no_tokens",
        )
    ksef.use_tokens(tokens)
    return ksef
