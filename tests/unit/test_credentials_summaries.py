"""What the client page reads of the credentials table: no secrets, active pairs first, then history."""

from __future__ import annotations

from klucznik.records import credentials


def _row(client_id: int, slot: str, status: str, serial: str) -> dict:
    return {"client_id": client_id, "slot": slot, "origin": "uploaded", "certificate": b"DER",
            "private_key": b"-----BEGIN ENCRYPTED PRIVATE KEY-----", "key_password": "tajne-haslo",
            "ksef_type": "Authentication", "serial": serial, "subject": "CN=x", "issuer": "CN=TEST CCK KSeF",
            "fingerprint": serial, "not_before": "2026-01-01T00:00:00Z", "not_after": "2028-01-01T00:00:00Z",
            "status": status, "created_at": "2026-01-01T00:00:00Z"}


def test_summaries_hide_secrets_and_list_active_first(store, client_company) -> None:
    with store.write() as db:
        for slot, status, serial in [("online", "superseded", "01"), ("online", "active", "02"),
                                     ("offline", "superseded", "03"), ("offline", "active", "04")]:
            db["credentials"].insert(_row(client_company.id, slot, status, serial))
    with store.connect() as db:
        rows = credentials.summaries(db, client_company.id)
        assert credentials.summaries(db, client_company.id + 1) == []
    assert [r["serial"] for r in rows] == ["04", "02", "03", "01"]
    assert not {"private_key", "key_password", "certificate"} & set(rows[0])
