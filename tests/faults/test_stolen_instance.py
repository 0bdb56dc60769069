"""A stolen copy of instance/ reveals nothing (docs/KEYS.md, "What a stolen copy reveals").

Canaries — a client name, a NIP, a credential row with a PEM private key and its password, KSeF tokens —
are stored through the real store; then every byte of every file under instance/ (database, ``-wal``,
``-shm``, snapshots, keyring.json) is searched for each canary in several encodings. The database does
not open without the key.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest
import sqlcipher3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from klucznik.clock import iso
from klucznik.clock import utcnow
from klucznik.ids import format_nip
from klucznik.instance.keyring import TEST_KDF
from klucznik.instance.store import Store
from klucznik.records import clients
from tests.support.defaults import ADMIN
from tests.support.defaults import ADMIN_PASSWORD
from tests.support.defaults import NOW
from tests.support.instances import add_clients
from tests.support.instances import nips

CLIENT_NAME = "Kanarek Żółty Spółka Jawna QX7"
CLIENT_NIP = "8712649037"  # valid checksum, unlikely to appear by chance
KEY_PASSWORD = "kanarek-hasło-do-klucza-93"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.canary-access-token-5d41402abc4b2a76"
REFRESH_TOKEN = "canary-refresh-token-7e2f9a0c11b84d3f"
EMAIL = "kanarek.canary@example.org"


def _forms(text: str) -> dict[str, bytes]:
    raw = text.encode("utf-8")
    return {
        "utf-8": raw,
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
        "base64": base64.b64encode(raw),
        "hex": raw.hex().encode(),
    }


@pytest.fixture
def stolen(tmp_path: Path) -> tuple[Store, dict[str, bytes]]:
    """An instance holding the canaries; returns the store (still unsealed, a connection open) and canaries."""
    store = Store(tmp_path / "instance", kdf=TEST_KDF)
    store.setup(ADMIN, ADMIN_PASSWORD, at=NOW)
    add_clients(store, [(f"Zwykła firma {i}", nip) for i, nip in enumerate(nips(20))])
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
    )
    der_key = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = iso(utcnow())
    with store.write() as db:
        client = clients.create_client(
            db,
            clients.validate(nip=CLIENT_NIP, name=CLIENT_NAME, email=EMAIL, notes="notatka kanarka"),
            actor=ADMIN, at=NOW
        )
        db["credentials"].insert(
            {
                "client_id": client.id,
                "slot": "online",
                "origin": "uploaded",
                "certificate": b"\x30\x82canary-cert",
                "private_key": pem,
                "key_password": KEY_PASSWORD,
                "ksef_type": "Authentication",
                "serial": "01AB",
                "subject": f"CN={CLIENT_NAME}",
                "issuer": "CN=Klucznik Sandbox KSeF CA",
                "fingerprint": "00" * 32,
                "not_before": now,
                "not_after": now,
                "created_at": now,
                "created_by": ADMIN,
            }
        )
        db["ksef_tokens"].insert(
            {
                "client_id": client.id,
                "context_nip": CLIENT_NIP,
                "access_token": ACCESS_TOKEN,
                "access_valid_until": now,
                "refresh_token": REFRESH_TOKEN,
                "refresh_valid_until": now,
                "created_at": now,
            }
        )
    pem_body = b"".join(pem.splitlines()[1:-1])
    canaries = {
        "client name": CLIENT_NAME.encode(),
        "client name (ASCII part)": b"Jawna QX7",
        "NIP": CLIENT_NIP.encode(),
        "NIP formatted": format_nip(CLIENT_NIP).encode(),
        "e-mail": EMAIL.encode(),
        "PEM header": b"ENCRYPTED PRIVATE KEY",
        "PEM body (first 48 chars)": pem_body[:48],
        "DER private key (middle 32 bytes)": der_key[20:52],
        "access token": ACCESS_TOKEN.encode(),
        "refresh token": REFRESH_TOKEN.encode(),
        "admin password": ADMIN_PASSWORD.encode(),
    }
    for encoding, data in _forms(KEY_PASSWORD).items():
        canaries[f"key password ({encoding})"] = data
    for encoding, data in _forms(ADMIN_PASSWORD).items():
        canaries[f"admin password ({encoding})"] = data
    for encoding, data in _forms(CLIENT_NAME).items():
        canaries[f"client name ({encoding})"] = data
    return store, canaries


def _grep(instance: Path, canaries: dict[str, bytes]) -> tuple[list[str], list[str]]:
    files = sorted(p for p in instance.rglob("*") if p.is_file())
    hits = []
    for path in files:
        data = path.read_bytes()
        for label, needle in canaries.items():
            if needle in data:
                hits.append(f"{label} in {path.relative_to(instance)}")
    return [str(p.relative_to(instance)) for p in files], hits


def test_no_canary_in_any_file_while_open_and_after_close(stolen: tuple[Store, dict[str, bytes]]) -> None:
    store, canaries = stolen
    # While a connection is open the WAL and shared-memory files exist: they must be encrypted too.
    db = store.connect()
    try:
        db.execute("SELECT count(*) FROM credentials").fetchone()
        with store.write(db) as same:
            same.execute("UPDATE clients SET notes = 'zmiana' WHERE nip = ?", [CLIENT_NIP])
        files, hits = _grep(store.path, canaries)
        assert "klucznik.db-wal" in files
        assert "klucznik.db-shm" in files
        assert any(name.startswith("snapshots/") for name in files)
        assert "keyring.json" in files
        assert hits == []
    finally:
        db.close()
    store.seal()
    files, hits = _grep(store.path, canaries)
    assert hits == []
    print(f"searched {len(files)} files for {len(canaries)} canaries: 0 hits")


def test_the_canaries_are_really_stored(stolen: tuple[Store, dict[str, bytes]]) -> None:
    """The search above would pass vacuously if the rows were never written: read them back."""
    store, _ = stolen
    db = store.connect()
    try:
        row = db.execute(
            "SELECT c.name, c.nip, k.key_password, k.private_key, t.refresh_token FROM clients c "
            "JOIN credentials k ON k.client_id = c.id JOIN ksef_tokens t ON t.client_id = c.id"
        ).fetchone()
    finally:
        db.close()
    assert row[0] == CLIENT_NAME and row[1] == CLIENT_NIP and row[2] == KEY_PASSWORD
    assert b"ENCRYPTED PRIVATE KEY" in row[3] and row[4] == REFRESH_TOKEN


def test_a_plain_sqlite_copy_would_be_found(tmp_path: Path) -> None:
    """The search finds a canary when one is there (so a zero above means something)."""
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", [CLIENT_NAME])
    conn.commit()
    conn.close()
    _files, hits = _grep(tmp_path, {"client name": CLIENT_NAME.encode()})
    assert hits == ["client name in plain.db"]


def _open_fails(path: Path, *pragmas: str) -> bool:
    conn = sqlcipher3.connect(str(path))
    try:
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.dbapi2.DatabaseError:
        return True
    finally:
        conn.close()
    return False


def test_database_does_not_open_without_the_key(stolen: tuple[Store, dict[str, bytes]]) -> None:
    store, _ = stolen
    store.seal()
    paths = [store.db_path, *store.snapshot_files()]  # PBKDF2 per try: keep it short
    for path in paths:
        assert _open_fails(path)
        assert _open_fails(path, "PRAGMA key = ''")
        assert _open_fails(path, f"PRAGMA key = '{ADMIN_PASSWORD}'")
        assert _open_fails(path, "PRAGMA key = \"x'" + "00" * 32 + "'\"")
        with pytest.raises(sqlite3.DatabaseError):
            plain = sqlite3.connect(path)
            try:
                plain.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                plain.close()
        assert not path.read_bytes().startswith(b"SQLite format 3")
