"""Explicit migrations on a real SQLCipher file: an older database is upgraded in place at unseal."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlcipher3

from klucznik.instance.database import open_database
from klucznik.instance.migrations import migrations
from klucznik.records import clients


def test_m004_backfills_the_polish_sort_key_of_existing_clients(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    key = secrets.token_bytes(32)
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.close()
    db = open_database(path, key)
    try:
        migrations.apply(db, stop_before="m004_clients_polish_sort_key")
        for number, name in [("5261040828", "Żuraw"), ("1132191233", "Łąka"), ("5213017228", "Zet"),
                             ("9542583988", "lato")]:
            db["clients"].insert({"nip": number, "name": name, "created_at": "x", "updated_at": "x"})
        # m004 runs first among what is pending; migrations added later follow it
        assert [m.name for m in migrations.pending(db)][0] == "m004_clients_polish_sort_key"
        migrations.apply(db)
        assert migrations.pending(db) == []
        assert [c.name for c in clients.search(db).clients] == ["lato", "Łąka", "Zet", "Żuraw"]
    finally:
        db.close()


def test_m005_gives_existing_credentials_tokens_and_attempts_the_environment_then_in_force(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    key = secrets.token_bytes(32)
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.close()
    db = open_database(path, key)
    try:
        migrations.apply(db, stop_before="m005_methods_office_identity")
        db["settings"].insert({"key": "office.ksef_environment", "value": "demo"})
        db["clients"].insert({"id": 1, "nip": "5261040828", "name": "A", "created_at": "x", "updated_at": "x"})
        db["ksef_tokens"].insert({"client_id": 1, "context_nip": "5261040828", "access_token": "a",
                                  "access_valid_until": "x", "refresh_token": "r", "refresh_valid_until": "x",
                                  "created_at": "x"})
        migrations.apply(db, stop_before="m005b_methods_enrollment")
        assert db.execute("SELECT ksef_environment FROM ksef_tokens").fetchall() == [("demo",)]
        assert db["office_credentials"].count == 0
    finally:
        db.close()
