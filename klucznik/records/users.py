"""Staff accounts: administrators and staff. Passwords live only as key slots in the keyring."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from klucznik.clock import iso
from klucznik.errors import NotFound
from klucznik.errors import StorageError
from klucznik.errors import ValidationError
from klucznik.instance.keyring import validate_password
from klucznik.instance.keyring import validate_username
from klucznik.instance.store import Store
from klucznik.records import audit
from klucznik.text import Text

ROLES = ("admin", "staff")


@dataclass(frozen=True)
class User:
    """A person of the office who can log in."""

    id: int
    username: str
    role: str
    active: bool
    must_change_password: bool
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _from_row(row: dict) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        active=bool(row["active"]),
        must_change_password=bool(row["must_change_password"]),
        created_at=row["created_at"],
    )


def get_user(db: Database, username: str) -> User | None:
    """The active user ``username``, or None."""
    # Every request asks, so it is one statement: ``db["users"]`` would list the views and the tables first,
    # and ``db.query`` wraps its statement in a savepoint.
    cursor = db.execute("SELECT * FROM users WHERE username = ? AND active = 1", [username])
    row = cursor.fetchone()
    return _from_row(dict(zip([column[0] for column in cursor.description], row, strict=True))) if row else None


def list_users(db: Database) -> list[User]:
    return [_from_row(row) for row in db["users"].rows_where("active = 1", order_by="username")]


def create_user(
    store: Store, *, username: str, role: str, password: str, actor: str, ip: str | None = None, at: datetime
) -> User:
    """Add a user with an initial password they must change at first login."""
    username = validate_username(username)
    validate_password(password)
    if role not in ROLES:
        raise ValidationError(
            Text("Wybierz rolę: administrator albo pracownik.", "Choose a role: administrator or staff."),
            field="role",
        )
    with store.connect() as db:
        if list(db["users"].rows_where("username = ?", [username])) or store.keyring().has_user(username):
            raise ValidationError(
                Text(
                    "Taki login już istnieje (także wśród usuniętych); wybierz inny.",
                    "This username exists already (also among removed users); choose another.",
                ),
                field="username",
            )
    store.add_user_slot(username, password)
    try:
        with store.write() as db:
            db["users"].insert(
                {
                    "username": username,
                    "role": role,
                    "active": 1,
                    "must_change_password": 1,
                    "created_at": iso(at),
                }
            )
            audit.record(
                db,
                actor=actor,
                action="users.create",
                object_type="user",
                object_id=username,
                details={"role": role},
                ip=ip,
                at=at,
            )
            user = get_user(db, username)
    except BaseException:
        store.remove_user_slot(username)
        raise
    assert user is not None
    return user


def remove_user(store: Store, *, username: str, actor: str, ip: str | None = None, at: datetime) -> None:
    """Deactivate ``username``, delete their key slot and rotate the database key.

    The rotation (:meth:`Store.rotate_key`) means a removed user who kept their password and an old copy
    of ``instance/`` can open that old copy at most, never anything written after the removal. The
    last administrator and one's own account cannot be removed.
    """

    def check(db: Database) -> None:
        user = get_user(db, username)
        if user is None:
            raise NotFound(Text("Nie ma takiego użytkownika.", "No such user."))
        if username == actor:
            raise ValidationError(
                Text("Nie można usunąć własnego konta.", "You cannot remove your own account.")
            )
        admins = db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0]
        if user.is_admin and admins <= 1:
            raise ValidationError(
                Text(
                    "To ostatni administrator; najpierw dodaj innego.",
                    "This is the last administrator; add another one first.",
                )
            )

    def record(db: Database) -> None:
        db.execute(
            "UPDATE users SET active = 0, removed_at = ? WHERE username = ? AND active = 1",
            [iso(at), username],
        )
        audit.record(
            db,
            actor=actor,
            action="users.remove",
            object_type="user",
            object_id=username,
            details={"database_key": "rotated"},
            ip=ip,
            at=at,
        )

    store.rotate_key(drop_user=username, check=check, record=record)


def change_password(
    store: Store, *, username: str, old: str, new: str, ip: str | None = None, at: datetime
) -> None:
    """Re-wrap the user's key slot under ``new`` (the current password is required)."""
    if old == new:
        raise ValidationError(
            Text(
                "Nowe hasło musi być inne niż obecne.", "The new password must differ from the current one."
            ),
            field="new_password",
        )
    store.change_password(username, old, new)
    with store.write() as db:
        db.execute("UPDATE users SET must_change_password = 0 WHERE username = ?", [username])
        audit.record(
            db,
            actor=username,
            action="users.password_change",
            object_type="user",
            object_id=username,
            ip=ip,
            at=at,
        )


def reset_password(
    store: Store, *, username: str, recovery_code: str, new_password: str, ip: str | None = None, at: datetime
) -> None:
    """A forgotten password: the recovery code lets ``username`` set a new one."""
    username = validate_username(username)
    validate_password(new_password)
    store.unseal_with_recovery(recovery_code)
    with store.connect() as db:
        if get_user(db, username) is None:
            raise NotFound(
                Text("Nie ma takiego użytkownika; sprawdź login.", "No such user; check the username.")
            )
    store.reset_password_with_recovery(username, recovery_code, new_password)
    with store.write() as db:
        db.execute("UPDATE users SET must_change_password = 0 WHERE username = ?", [username])
        audit.record(
            db,
            actor=username,
            action="users.password_reset",
            object_type="user",
            object_id=username,
            ip=ip,
            at=at,
        )


#: One-time passwords use no look-alike characters (no 0/O/o, 1/l/I/i), so they can be read out and typed.
ONE_TIME_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"


def one_time_password(groups: int = 4, size: int = 4) -> str:
    """A random password to hand over once (``Ab3x-9QkP-…``: about 92 bits), changed at the first login."""
    return "-".join(
        "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(size)) for _ in range(groups)
    )


def _admins(db: Database) -> int:
    return db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0]


def reset_password_by_admin(
    store: Store, *, username: str, password: str, actor: str, ip: str | None = None, at: datetime
) -> None:
    """An administrator gives ``username`` a one-time ``password``, to be changed at the next login.

    The user's key slot is replaced (the old password opens nothing any more) and the database key is
    rotated, as when a user is removed: a copy of the old ``keyring.json`` with the old password cannot
    open anything written from now on (docs/KEYS.md).
    """
    validate_password(password)
    with store.connect() as db:
        user = get_user(db, username)
    if user is None:
        raise NotFound(Text("Nie ma takiego użytkownika.", "No such user."))
    if username == actor:
        raise ValidationError(
            Text(
                "Własne hasło zmienisz na stronie „Hasło”.",
                "Change your own password on the Password page.",
            )
        )
    store.add_user_slot(username, password)

    def record(db: Database, key: str = "rotated") -> None:
        db.execute("UPDATE users SET must_change_password = 1 WHERE username = ? AND active = 1", [username])
        audit.record(
            db,
            actor=actor,
            action="users.password_reset_by_admin",
            object_type="user",
            object_id=username,
            details={"database_key": key},
            ip=ip,
            at=at,
        )

    try:
        store.rotate_key(record=record)
    except StorageError:  # the portal stayed busy: the new slot stands; the key is rotated at the next removal
        with store.write() as db:
            record(db, "unchanged")


def set_role(
    store: Store, *, username: str, role: str, actor: str, ip: str | None = None, at: datetime
) -> None:
    """Change ``username``'s role; the office always keeps at least one administrator."""
    if role not in ROLES:
        raise ValidationError(
            Text("Wybierz rolę: administrator albo pracownik.", "Choose a role: administrator or staff."),
            field="role",
        )
    with store.write() as db:
        user = get_user(db, username)
        if user is None:
            raise NotFound(Text("Nie ma takiego użytkownika.", "No such user."))
        if user.role == role:
            return
        if user.is_admin and _admins(db) <= 1:
            raise ValidationError(
                Text(
                    "To jedyny administrator biura; najpierw nadaj rolę administratora komuś innemu.",
                    "This is the office's only administrator; make someone else an administrator first.",
                ),
                field="role",
            )
        db.execute("UPDATE users SET role = ? WHERE username = ? AND active = 1", [role, username])
        audit.record(
            db,
            actor=actor,
            action="users.role_change",
            object_type="user",
            object_id=username,
            details={"changes": {"role": [user.role, role]}},
            ip=ip,
            at=at,
        )
