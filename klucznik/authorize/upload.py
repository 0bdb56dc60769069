"""Method 3: the client's own certificates, checked by :mod:`klucznik.certs`, stored as the client's credentials.

Both checked pairs are stored in the caller's ``store.write()`` transaction: the client's active credentials
become ``superseded`` (never deleted), its method becomes ``user_certs`` and an audit entry
``credentials.upload`` is written — either everything is stored or nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from klucznik import certs
from klucznik.certs.model import PairCheck
from klucznik.certs.model import SetCheck
from klucznik.errors import ValidationError
from klucznik.records import audit
from klucznik.records import clients
from klucznik.records import credentials
from klucznik.records import office
from klucznik.text import Text


def save_uploaded_set(
    db: Database, *, client_id: int, result: SetCheck, actor: str | None, ip: str | None, at: datetime
) -> tuple[int, ...]:
    """Store the checked pairs for a client, inside ``store.write()``; returns the new credential ids.

    The pairs given (both, or one when the other was left for later: ``result.absent``) are stored; the
    client's active credentials of those slots become ``superseded`` (never deleted), its auth method becomes
    ``user_certs`` and an audit record ``credentials.upload`` is written, all in the caller's
    transaction, so either everything is stored or nothing.
    """
    if not result.ok:
        raise ValidationError(
            Text("Pliki mają błędy i nie zostały zapisane.", "The files have errors and were not stored."),
            code="invalid",
        )
    clients.get_client(db, client_id)
    environment = office.get_office(db).ksef_environment
    superseded = credentials.supersede_active(db, client_id, at=at, slots=result.given)
    ids = tuple(
        _store_pair(db, client_id=client_id, pair=result.pair(slot), actor=actor, at=at, environment=environment)
        for slot in certs.SLOTS
        if slot in result.given
    )
    clients.set_auth_method(db, client_id, "user_certs", at=at)
    audit.record(
        db,
        actor=actor,
        action="credentials.upload",
        object_type="client",
        object_id=client_id,
        details={
            **{
                f"{slot}_serial": result.pair(slot).certificate.serial
                for slot in result.given
                if result.pair(slot).certificate is not None
            },
            "superseded": superseded,
            "ksef_environment": environment,
        },
        ip=ip,
        at=at,
    )
    return ids


def _store_pair(
    db: Database, *, client_id: int, pair: PairCheck, actor: str | None, at: datetime, environment: str
) -> int:
    """One uploaded pair as a ``credentials`` row: key bytes as uploaded, the password only if the key needs one."""
    return credentials.add_credential(
        db,
        client_id=client_id,
        slot=pair.slot,
        origin="uploaded",
        info=pair.certificate,
        ksef_type=pair.certificate.ksef_type,
        private_key=pair.key.data,
        key_password=pair.password if pair.key.encrypted else None,
        actor=actor,
        at=at,
        ksef_environment=environment,
    )
