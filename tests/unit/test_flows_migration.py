"""m007_flows_old_nip on a real SQLCipher file: existing rows keep everything and have no old NIP."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlcipher3

from klucznik.instance.database import open_database
from klucznik.instance.migrations import migrations


def test_m007_adds_old_nip_to_the_authorization_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    key = secrets.token_bytes(32)
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.close()
    db = open_database(path, key)
    try:
        migrations.apply(db, stop_before="m007_flows_old_nip")
        db["clients"].insert({"nip": "5261040828", "name": "Firma", "created_at": "x", "updated_at": "x"})
        db["ksef_tokens"].insert({"client_id": 1, "context_nip": "5261040828", "access_token": "a",
                                  "access_valid_until": "x", "refresh_token": "r", "refresh_valid_until": "x",
                                  "created_at": "x"})
        assert "m007_flows_old_nip" in [m.name for m in migrations.pending(db)]
        migrations.apply(db)
        for table in ("credentials", "ksef_tokens", "auth_requests"):
            assert "old_nip" in db[table].columns_dict, table
        assert [row["old_nip"] for row in db.query("SELECT old_nip FROM ksef_tokens")] == [None]
        assert db.execute("SELECT status FROM ksef_tokens").fetchone()[0] == "active"
    finally:
        db.close()
