"""The ``ksef_tokens`` table: a client's KSeF session tokens, kept only in the encrypted database.

A login in the client's context (methods 1 and 2) redeems an access token (minutes) and a refresh token (up
to 7 days). The newest pair is ``active``; an older one becomes ``superseded`` when a new one is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from klucznik import clock


@dataclass(frozen=True)
class StoredTokens:
    """The active token pair of a client."""

    access_token: str
    access_valid_until: datetime
    refresh_token: str
    refresh_valid_until: datetime
    ksef_environment: str | None = None


def active_tokens(db: Database, client_id: int) -> StoredTokens | None:
    """The client's current KSeF tokens (``None`` if there are none)."""
    row = db.execute(
        "SELECT access_token, access_valid_until, refresh_token, refresh_valid_until, ksef_environment "
        "FROM ksef_tokens "
        "WHERE client_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1",
        [client_id],
    ).fetchone()
    if row is None:
        return None
    return StoredTokens(row[0], clock.parse(row[1]), row[2], clock.parse(row[3]), row[4])


def issued_for(db: Database, client_id: int, reference: str | None) -> bool:
    """True when KSeF issued the client tokens for the login ``reference`` (it accepted that login)."""
    if not reference:
        return False
    row = db.execute(
        "SELECT 1 FROM ksef_tokens WHERE client_id = ? AND reference_number = ? LIMIT 1", [client_id, reference]
    ).fetchone()
    return row is not None


def store_tokens(
    db: Database,
    *,
    client_id: int,
    context_nip: str,
    reference: str | None,
    tokens: StoredTokens,
    at: datetime,
) -> int:
    """Store ``tokens`` as the client's active pair (the previous pair becomes ``superseded``)."""
    db.execute(
        "UPDATE ksef_tokens SET status = 'superseded' WHERE client_id = ? AND status = 'active'", [client_id]
    )
    return (
        db["ksef_tokens"]
        .insert(
            {
                "client_id": client_id,
                "context_nip": context_nip,
                "reference_number": reference,
                "access_token": tokens.access_token,
                "access_valid_until": clock.iso(tokens.access_valid_until),
                "refresh_token": tokens.refresh_token,
                "refresh_valid_until": clock.iso(tokens.refresh_valid_until),
                "status": "active",
                "created_at": clock.iso(at),
                "ksef_environment": tokens.ksef_environment,
            }
        )
        .last_pk
    )


def end_active(db: Database, client_id: int) -> int:
    """The client's session is over (ended in KSeF, or no longer wanted): its tokens are never used again."""
    return db.execute(
        "UPDATE ksef_tokens SET status = 'ended' WHERE client_id = ? AND status = 'active'", [client_id]
    ).rowcount
