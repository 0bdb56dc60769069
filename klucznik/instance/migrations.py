"""The schema, as explicit migrations (never sqlite-utils' ``alter=True``: it fails on sqlcipher3 connections).

Append new migrations at the end; never edit one that has shipped. A migration that computes data uses a
frozen copy of the rule it needs, written into this module, never the live code of another module: the
live rule may change later, and an old instance must always be converted exactly as it was then.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("klucznik")


@migrations()
def m001_core(db: Database) -> None:
    """Meta, users, the append-only audit log, settings and client companies."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta (key, value) VALUES ('generation', '0')")
    db.execute(
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
            active INTEGER NOT NULL DEFAULT 1,
            must_change_password INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            removed_at TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT,
            ip TEXT,
            action TEXT NOT NULL,
            object_type TEXT,
            object_id TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX audit_log_at ON audit_log (at)")
    db.execute("CREATE INDEX audit_log_action ON audit_log (action)")
    db.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE clients (
            id INTEGER PRIMARY KEY,
            nip TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            auth_method TEXT CHECK (auth_method IN ('grant', 'portal_certs', 'user_certs')),
            search_text TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            archived_at TEXT
        )"""
    )
    db.execute("CREATE INDEX clients_active_name ON clients (archived_at, name)")


@migrations()
def m002_credentials_and_ksef(db: Database) -> None:
    """Certificates with their keys, KSeF authorisation requests, tokens and an operation log."""
    db.execute(
        """CREATE TABLE credentials (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            slot TEXT NOT NULL CHECK (slot IN ('online', 'offline')),
            origin TEXT NOT NULL CHECK (origin IN ('uploaded', 'generated')),
            certificate BLOB NOT NULL,
            private_key BLOB NOT NULL,
            key_password TEXT,
            ksef_type TEXT,
            serial TEXT NOT NULL,
            subject TEXT NOT NULL,
            issuer TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'revoked')),
            created_at TEXT NOT NULL,
            created_by TEXT,
            superseded_at TEXT
        )"""
    )
    db.execute("CREATE INDEX credentials_client ON credentials (client_id, slot, status)")
    db.execute(
        """CREATE TABLE auth_requests (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            method TEXT NOT NULL,
            challenge TEXT NOT NULL,
            challenge_timestamp TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            unsigned_xml BLOB NOT NULL,
            signed_xml BLOB,
            signer TEXT,
            reference_number TEXT,
            status TEXT NOT NULL DEFAULT 'issued',
            status_code INTEGER,
            status_description TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX auth_requests_client ON auth_requests (client_id, created_at)")
    db.execute(
        """CREATE TABLE ksef_tokens (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            context_nip TEXT NOT NULL,
            reference_number TEXT,
            access_token TEXT NOT NULL,
            access_valid_until TEXT NOT NULL,
            refresh_token TEXT NOT NULL,
            refresh_valid_until TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            created_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX ksef_tokens_client ON ksef_tokens (client_id, status)")
    db.execute(
        """CREATE TABLE ksef_operations (
            id INTEGER PRIMARY KEY,
            client_id INTEGER REFERENCES clients (id),
            at TEXT NOT NULL,
            operation TEXT NOT NULL,
            reference_number TEXT,
            ok INTEGER NOT NULL,
            http_status INTEGER,
            ksef_code INTEGER,
            description TEXT NOT NULL DEFAULT '',
            details TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX ksef_operations_client ON ksef_operations (client_id, at)")


@migrations()
def m003_auth_request_progress(db: Database) -> None:
    """Signed-XML wizard: what an authentication in progress needs between two page loads.

    ``authentication_token`` is KSeF's short-lived operation token (needed to poll and redeem);
    ``followup`` is JSON for the step after login (the grant's reference, or the enrollments and their
    not-yet-certified private keys); both live only in the encrypted database.
    """
    db.execute("ALTER TABLE auth_requests ADD COLUMN authentication_token TEXT")
    db.execute("ALTER TABLE auth_requests ADD COLUMN authentication_token_valid_until TEXT")
    db.execute("ALTER TABLE auth_requests ADD COLUMN followup TEXT NOT NULL DEFAULT '{}'")


@migrations()
def m004_clients_polish_sort_key(db: Database) -> None:
    """Clients list in Polish alphabetical order through an indexed key (the rule as it was: ``_m004_sort_key``)."""
    db.execute("ALTER TABLE clients ADD COLUMN sort_key TEXT NOT NULL DEFAULT ''")
    for client_id, name in db.execute("SELECT id, name FROM clients").fetchall():
        db.execute("UPDATE clients SET sort_key = ? WHERE id = ?", [_m004_sort_key(name), client_id])
    db.execute("CREATE INDEX clients_active_sort ON clients (archived_at, sort_key)")


#: m004's rule, frozen: letters of the Polish alphabet map, in order, into the Private Use Area above every
#: ordinary character, so a binary comparison gives: spaces and punctuation < digits < a < ą < b … ź < ż.
_M004_ALPHABET = "aąbcćdeęfghijklłmnńoóprsśtuvwxyzźż"
_M004_KEY = str.maketrans({ch: chr(0xE000 + i) for i, ch in enumerate(_M004_ALPHABET)})


def _m004_sort_key(name: str) -> str:
    """The sort key of ``name`` as m004 computed it (casefold, then the Polish alphabet's order)."""
    return name.casefold().translate(_M004_KEY)


@migrations()
def m005_methods_office_identity(db: Database) -> None:
    """The office's own KSeF certificate and key, and the KSeF environment of every stored credential.

    A credential, a token pair and a login attempt belong to the KSeF environment (TEST, DEMO, PRD or the
    sandbox) they were obtained in; the portal never uses one in another environment. Rows that exist
    already get the environment configured at the time of the migration (``test`` when none was saved),
    which is the only one they can have come from.
    """
    db.execute(
        """CREATE TABLE office_credentials (
            id INTEGER PRIMARY KEY,
            ksef_environment TEXT NOT NULL,
            nip TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('uploaded', 'generated')),
            certificate BLOB NOT NULL,
            private_key BLOB NOT NULL,
            key_password TEXT,
            ksef_type TEXT,
            serial TEXT NOT NULL,
            subject TEXT NOT NULL,
            issuer TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
            created_at TEXT NOT NULL,
            created_by TEXT,
            superseded_at TEXT,
            checked_at TEXT,
            check_ok INTEGER,
            check_message TEXT
        )"""
    )
    db.execute("CREATE INDEX office_credentials_environment ON office_credentials (ksef_environment, status)")
    row = db.execute("SELECT value FROM settings WHERE key = 'office.ksef_environment'").fetchone()
    current = row[0] if row and row[0] else "test"
    for table in ("credentials", "ksef_tokens", "auth_requests"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN ksef_environment TEXT")
        db.execute(f"UPDATE {table} SET ksef_environment = ?", [current])


@migrations()
def m005b_methods_enrollment(db: Database) -> None:
    """Method 1 proven and method 2 crash-safe.

    ``grant_checks``: each check of a client's grant to the office (the office logged in in the client's
    context, and the grants it received as KSeF lists them), with the permissions and the outcome in words.
    ``enrollments``: one row per certificate requested in method 2, written with its private key *before*
    the certificate request is sent, then the reference number, serial and certificate as KSeF answers, so
    an interrupted enrollment resumes where it stopped and an issued certificate always finds its key.
    """
    db.execute(
        """CREATE TABLE grant_checks (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            checked_at TEXT NOT NULL,
            ksef_environment TEXT NOT NULL,
            office_nip TEXT NOT NULL,
            login_ok INTEGER NOT NULL,
            query_ok INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            permissions TEXT NOT NULL DEFAULT '[]',
            message_pl TEXT NOT NULL,
            message_en TEXT NOT NULL,
            actor TEXT
        )"""
    )
    db.execute("CREATE INDEX grant_checks_client ON grant_checks (client_id, id)")
    db.execute(
        """CREATE TABLE enrollments (
            id INTEGER PRIMARY KEY,
            auth_request_id INTEGER NOT NULL REFERENCES auth_requests (id),
            client_id INTEGER NOT NULL REFERENCES clients (id),
            ksef_environment TEXT NOT NULL,
            certificate_type TEXT NOT NULL,
            slot TEXT NOT NULL,
            certificate_name TEXT NOT NULL,
            key_algorithm TEXT NOT NULL,
            private_key BLOB NOT NULL,
            csr BLOB NOT NULL,
            status TEXT NOT NULL,
            reference_number TEXT,
            serial TEXT,
            certificate BLOB,
            credential_id INTEGER,
            error TEXT,
            sent_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX enrollments_request ON enrollments (auth_request_id)")
    db.execute("CREATE INDEX enrollments_status ON enrollments (status)")


@migrations()
def m007_flows_old_nip(db: Database) -> None:
    """A client's NIP changed after it was connected: its authorization stays as history of the old NIP.

    ``old_nip`` is set on the credentials, KSeF tokens and login attempts that belonged to the client
    under its previous NIP; such rows are never used again (their status is no longer active).
    """
    for table in ("credentials", "ksef_tokens", "auth_requests"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN old_nip TEXT")


@migrations()
def m006_status_checks(db: Database) -> None:
    """The status page: live checks of stored credentials, each client's latest outcome, check-all jobs.

    ``status_checks`` keeps every check (append-only history, what the page's "last check" and the
    per-certificate KSeF statuses come from); ``status_latest`` holds each client's newest check so the
    page filters thousands of clients without scanning the history; ``status_jobs`` is a "check all"
    run (its progress survives a restart: ``state`` running → resumed or marked interrupted).
    """
    db.execute(
        """CREATE TABLE status_jobs (
            id INTEGER PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('running', 'done', 'cancelled', 'interrupted')),
            client_ids TEXT NOT NULL DEFAULT '[]',
            total INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            created_by TEXT,
            updated_at TEXT NOT NULL,
            finished_at TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE status_checks (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            job_id INTEGER REFERENCES status_jobs (id),
            at TEXT NOT NULL,
            ok INTEGER NOT NULL,
            method TEXT,
            grant_state TEXT,
            certificates TEXT NOT NULL DEFAULT '{}',
            limits TEXT,
            error_code TEXT,
            http_status INTEGER,
            ksef_code INTEGER,
            ksef_text TEXT NOT NULL DEFAULT '',
            message_pl TEXT NOT NULL DEFAULT '',
            message_en TEXT NOT NULL DEFAULT ''
        )"""
    )
    db.execute("CREATE INDEX status_checks_client ON status_checks (client_id, id)")
    db.execute("CREATE INDEX status_checks_job ON status_checks (job_id, client_id)")
    db.execute(
        """CREATE TABLE status_latest (
            client_id INTEGER PRIMARY KEY REFERENCES clients (id),
            check_id INTEGER NOT NULL REFERENCES status_checks (id),
            at TEXT NOT NULL,
            ok INTEGER NOT NULL,
            grant_state TEXT
        )"""
    )
    db.execute("CREATE INDEX status_latest_ok ON status_latest (ok)")
    db.execute("CREATE INDEX credentials_active_expiry ON credentials (status, not_after, client_id)")


@migrations()
def m006b_status_reminders(db: Database) -> None:
    """E-mail reminders of expiring items: one row per item and threshold (30, 14, 7, 1 days) once sent, so
    ``klucznik remind`` never sends the same reminder twice. The SMTP settings live in ``settings``."""
    db.execute(
        """CREATE TABLE status_reminders (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            kind TEXT NOT NULL,
            serial TEXT NOT NULL,
            threshold INTEGER NOT NULL,
            valid_to TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            UNIQUE (client_id, kind, serial, threshold)
        )"""
    )


@migrations()
def m005c_signing_links(db: Database) -> None:
    """One-time signing links: a client without an account signs the login file on the portal's public page.

    Only a SHA-256 of the link's secret is stored; a link lives 7 days or until one successful use.
    """
    db.execute(
        """CREATE TABLE signing_links (
            id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES clients (id),
            method TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            created_by TEXT,
            expires_at TEXT NOT NULL,
            auth_request_id INTEGER REFERENCES auth_requests (id),
            used_at TEXT,
            revoked_at TEXT
        )"""
    )
    db.execute("CREATE INDEX signing_links_client ON signing_links (client_id, id)")
