"""The keyring: who may open the database, without its key ever being stored in the clear.

The database is encrypted by SQLCipher with a *database master key* (DMK): 32 random bytes used as a
raw key. ``keyring.json`` next to the database holds only wrapped copies of it (docs/KEYS.md):

* **user slots**: each user has an X25519 key pair. The private key is encrypted (AES-256-GCM) with a
  key derived from the user's password (Argon2id, then HKDF); the DMK is *sealed* to the public key
  (ephemeral X25519 + HKDF-SHA256 + AES-256-GCM, the construction of libsodium's sealed boxes). An
  administrator who has the DMK can therefore add a user, and a new DMK can be sealed to every
  remaining user without knowing their passwords.
* **the recovery slot**: a key pair derived from a 128-bit recovery code shown once at setup.
* **the unattended slot** (optional): a key pair whose private key lives in a file *outside*
  ``instance/`` (``KLUCZNIK_UNSEAL_KEY_FILE``), for an unattended start.

**Rotation** (docs/KEYS.md, "Removing a user"): removing a user seals a *new* DMK to
every remaining slot (``pending_dmk`` and ``pending_epoch``), the database is rekeyed, then the new key
becomes each slot's ``dmk`` and the old one joins its ``previous`` keys. Previous keys stay sealed to the
remaining slots only, for ``RETAIN_PREVIOUS_SECONDS`` after they were retired (the newest always), so a
copy of ``instance/`` whose files were copied on either side of one or several rotations still opens for
them, and never for the removed user. :class:`Keys` is what a slot opens: the current key, the pending
one while a rotation is under way (or was interrupted), and the previous ones.

A wrong password fails the GCM tag, so no password hash is stored. The file is replaced atomically
(temporary file, fsync, rename, fsync of the folder), so a copy taken at any moment parses.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type
from argon2.low_level import hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from klucznik.errors import InstanceDamaged
from klucznik.errors import PortalError
from klucznik.errors import ValidationError
from klucznik.errors import WrongCredentials
from klucznik.instance.files import write_atomic
from klucznik.text import Text

FORMAT = "klucznik-keyring"
VERSION = 1
MIN_PASSWORD_LENGTH = 12
#: How long a retired database key stays sealed to the remaining slots (the newest one always stays): long
#: enough for any copy of instance/ in progress during a rotation to finish.
RETAIN_PREVIOUS_SECONDS = 24 * 3600
MAX_PREVIOUS_KEYS = 64
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

# At most two password derivations at once: each takes ``m`` KiB of memory, and a burst of logins must not
# exhaust the machine's memory.
_KDF_SLOTS = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, stored in each slot so they can be raised later."""

    time_cost: int = 8
    """Passes; 8 × 64 MiB takes about 0.3 s on a 2-core machine (see ``bench/bench_login.py``)."""
    memory_kib: int = 65536
    parallelism: int = 2


DEFAULT_KDF = KdfParams()
#: Cheap parameters for the test suite only (never used unless a caller passes them).
TEST_KDF = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _hkdf(secret: bytes, *, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def derive_password_key(password: str, salt: bytes, kdf: KdfParams) -> bytes:
    """Argon2id(password) → HKDF → 32-byte key-encryption key."""
    with _KDF_SLOTS:
        stretched = hash_secret_raw(
            password.encode("utf-8"),
            salt,
            time_cost=kdf.time_cost,
            memory_cost=kdf.memory_kib,
            parallelism=kdf.parallelism,
            hash_len=32,
            type=Type.ID,
        )
    return _hkdf(stretched, salt=b"", info=b"klucznik kek v1")


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def seal(secret: bytes, recipient: X25519PublicKey, aad: bytes) -> dict[str, str]:
    """Encrypt ``secret`` so that only the holder of ``recipient``'s private key can open it."""
    ephemeral = X25519PrivateKey.generate()
    epk = _raw_public(ephemeral.public_key())
    key = _hkdf(ephemeral.exchange(recipient), salt=epk + _raw_public(recipient), info=b"klucznik seal v1")
    nonce = secrets.token_bytes(12)
    return {"epk": _b64(epk), "nonce": _b64(nonce), "ct": _b64(AESGCM(key).encrypt(nonce, secret, aad))}


def unseal(sealed: dict[str, str], private: X25519PrivateKey, aad: bytes) -> bytes:
    """Open what :func:`seal` made; raises :class:`cryptography.exceptions.InvalidTag` if it is not ours."""
    epk = _unb64(sealed["epk"])
    shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    key = _hkdf(shared, salt=epk + _raw_public(private.public_key()), info=b"klucznik seal v1")
    return AESGCM(key).decrypt(_unb64(sealed["nonce"]), _unb64(sealed["ct"]), aad)


def new_recovery_code() -> str:
    """128 random bits as 26 base32 characters in groups: ``ABCD-EFGH-…``."""
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


_LOOK_ALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def _normalize_code(code: str) -> bytes:
    # The digits 0, 1 and 8 never occur in a code: whoever types them read the letters O, I and B.
    cleaned = re.sub(r"[\s-]", "", code or "").upper().translate(_LOOK_ALIKES)
    if len(cleaned) != 26:
        raise WrongCredentials(
            Text(
                "Kod odzyskiwania ma 26 znaków (litery i cyfry, w grupach po 4); sprawdź go z wydrukiem.",
                "The recovery code has 26 characters (letters and digits, in groups of 4); compare it with "
                "your printout.",
            )
        )
    try:
        return base64.b32decode(cleaned + "======")
    except ValueError:
        raise WrongCredentials(
            Text(
                "Kod odzyskiwania zawiera znaki, których w nim nie ma: składa się tylko z liter A–Z i cyfr "
                "2–7. Sprawdź go z wydrukiem.",
                "The recovery code has characters it cannot contain: it is made of the letters A–Z and the "
                "digits 2–7 only. Compare it with your printout.",
            )
        ) from None


def _key_from_seed(seed: bytes, salt: bytes, info: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_hkdf(seed, salt=salt, info=info))


def validate_username(username: str) -> str:
    """Lower-case it and check the allowed characters."""
    name = (username or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise ValidationError(
            Text(
                "Login: 2–32 znaki, małe litery bez polskich znaków, cyfry, kropka, myślnik lub podkreślenie.",
                "Username: 2–32 characters, lower-case letters, digits, dot, dash or underscore.",
            ),
            field="username",
        )
    return name


def validate_password(password: str) -> str:
    """At least 12 characters (ASVS 6.2.1); anything else is allowed, including spaces and emoji."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            Text(
                f"Hasło musi mieć co najmniej {MIN_PASSWORD_LENGTH} znaków. Najłatwiej zapamiętać kilka słów.",
                f"The password must have at least {MIN_PASSWORD_LENGTH} characters. A few words are easiest "
                "to remember.",
            ),
            field="password",
        )
    if len(password) > 1024:
        raise ValidationError(
            Text(
                "Hasło jest za długie (najwyżej 1024 znaki).",
                "The password is too long (at most 1024 characters).",
            ),
            field="password",
        )
    return password


_DAMAGED = InstanceDamaged(
    Text(
        "Plik keyring.json w folderze instance/ jest uszkodzony albo nie pochodzi z Klucznika. "
        "Przywróć cały folder instance/ z kopii zapasowej.",
        "instance/keyring.json is damaged or not Klucznik's. Restore the whole instance/ folder from a backup.",
    )
)


@dataclass(frozen=True)
class Keys:
    """The database keys one slot opens: try ``pending`` and ``previous`` too when ``current`` fails."""

    current: bytes
    pending: bytes | None = None
    previous: tuple[bytes, ...] = ()

    def candidates(self) -> list[bytes]:
        """Every key, the likeliest first."""
        return [key for key in (self.current, self.pending, *self.previous) if key is not None]


class Keyring:
    """The wrapped copies of the database key; see the module docstring."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = Path(path)
        self.data = data

    # -- files ---------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read and check ``keyring.json``; raise :class:`InstanceDamaged` if it is not ours."""
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            raise _DAMAGED from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise _DAMAGED
        if not isinstance(data.get("users"), dict) or not isinstance(data.get("epoch"), int):
            raise _DAMAGED
        return cls(Path(path), data)

    @classmethod
    def create(cls, path: Path, dmk: bytes) -> tuple[Keyring, str]:
        """A new keyring for ``dmk`` with a recovery slot; returns it and the recovery code."""
        ring = cls(Path(path), {"format": FORMAT, "version": VERSION, "epoch": 1, "users": {}})
        code = new_recovery_code()
        ring._set_recovery(code, dmk)
        return ring, code

    def save(self) -> None:
        """Replace the file atomically and durably."""
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode("utf-8"))

    # -- slots -----------------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return int(self.data["epoch"])

    def usernames(self) -> list[str]:
        return sorted(self.data["users"])

    def has_user(self, username: str) -> bool:
        return username in self.data["users"]

    @property
    def rotation_pending(self) -> bool:
        return "pending_epoch" in self.data

    def _aad(self, kind: str, name: str = "", *, epoch: int | None = None, role: str = "") -> bytes:
        epoch = self.epoch if epoch is None else epoch
        return f"klucznik|{kind}|{name}|{role}epoch:{epoch}".encode()

    def _slots(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(kind, name, slot)`` of every slot: users, then recovery and unattended."""
        for username, slot in self.data["users"].items():
            yield "user", username, slot
        for kind in ("recovery", "unattended"):
            slot = self.data.get(kind)
            if slot:
                yield kind, "", slot

    def _open_slot(
        self,
        kind: str,
        name: str,
        slot: dict[str, Any],
        private: X25519PrivateKey,
        *,
        wrong_key: PortalError = _DAMAGED,
    ) -> Keys:
        """Every key sealed in ``slot``. ``wrong_key`` is raised when ``private`` does not open the current
        copy (for a user slot the password was already proved, so that is damage); other failures are damage.
        """
        try:
            current = unseal(slot["dmk"], private, self._aad(kind, name))
        except InvalidTag:
            raise wrong_key from None
        except (KeyError, ValueError, TypeError):
            raise _DAMAGED from None
        try:
            pending = None
            if "pending_dmk" in slot and "pending_epoch" in self.data:
                pending = unseal(
                    slot["pending_dmk"],
                    private,
                    self._aad(kind, name, epoch=int(self.data["pending_epoch"]), role="pending|"),
                )
            previous = tuple(
                unseal(
                    entry["dmk"], private, self._aad(kind, name, epoch=int(entry["epoch"]), role="previous|")
                )
                for entry in slot.get("previous", [])
            )
        except (InvalidTag, KeyError, ValueError, TypeError):
            raise _DAMAGED from None
        return Keys(current, pending, previous)

    def add_user(self, username: str, password: str, dmk: bytes, kdf: KdfParams = DEFAULT_KDF) -> None:
        """Create (or replace) ``username``'s slot for ``password``."""
        salt = secrets.token_bytes(16)
        kek = derive_password_key(password, salt, kdf)
        private = X25519PrivateKey.generate()
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(nonce, _raw_private(private), f"user:{username}".encode())
        self.data["users"][username] = {
            "kdf": {"alg": "argon2id", **asdict(kdf)},
            "salt": _b64(salt),
            "public_key": _b64(_raw_public(private.public_key())),
            "private_key": {"nonce": _b64(nonce), "ct": _b64(wrapped)},
            "dmk": seal(dmk, private.public_key(), self._aad("user", username)),
        }

    def remove_user(self, username: str) -> None:
        self.data["users"].pop(username, None)

    def _user_private(self, username: str, password: str) -> X25519PrivateKey:
        slot = self.data["users"].get(username)
        if slot is None:
            # Same cost as a real attempt, so a wrong username cannot be told from a wrong password.
            derive_password_key(password, b"\0" * 16, KdfParams(**_kdf_args(self._any_kdf())))
            raise _wrong_password()
        try:
            kek = derive_password_key(password, _unb64(slot["salt"]), KdfParams(**_kdf_args(slot["kdf"])))
            raw = AESGCM(kek).decrypt(
                _unb64(slot["private_key"]["nonce"]),
                _unb64(slot["private_key"]["ct"]),
                f"user:{username}".encode(),
            )
        except InvalidTag:
            raise _wrong_password() from None
        except (KeyError, ValueError, TypeError):
            raise _DAMAGED from None
        return X25519PrivateKey.from_private_bytes(raw)

    def _any_kdf(self) -> dict[str, Any]:
        for slot in self.data["users"].values():
            return slot["kdf"]
        return {"alg": "argon2id", **asdict(DEFAULT_KDF)}

    def unlock_user(self, username: str, password: str) -> bytes:
        """The DMK, if ``password`` is ``username``'s; else :class:`WrongCredentials`."""
        return self.user_keys(username, password).current

    def user_keys(self, username: str, password: str) -> Keys:
        """Every key ``username``'s slot opens with ``password``."""
        private = self._user_private(username, password)
        return self._open_slot("user", username, self.data["users"][username], private)

    def change_password(self, username: str, old: str, new: str) -> None:
        """Re-wrap ``username``'s private key under ``new``; the DMK and other slots stay as they are."""
        private = self._user_private(username, old)
        slot = self.data["users"][username]
        kdf = KdfParams(**_kdf_args(slot["kdf"]))
        salt = secrets.token_bytes(16)
        kek = derive_password_key(new, salt, kdf)
        nonce = secrets.token_bytes(12)
        slot["salt"] = _b64(salt)
        slot["private_key"] = {
            "nonce": _b64(nonce),
            "ct": _b64(AESGCM(kek).encrypt(nonce, _raw_private(private), f"user:{username}".encode())),
        }

    def _set_recovery(self, code: str, dmk: bytes) -> None:
        salt = secrets.token_bytes(16)
        private = _key_from_seed(_normalize_code(code), salt, b"klucznik recovery v1")
        self.data["recovery"] = {
            "salt": _b64(salt),
            "public_key": _b64(_raw_public(private.public_key())),
            "dmk": seal(dmk, private.public_key(), self._aad("recovery")),
        }

    def unlock_recovery(self, code: str) -> bytes:
        """The DMK, if ``code`` is the recovery code."""
        return self.recovery_keys(code).current

    def recovery_keys(self, code: str) -> Keys:
        """Every key the recovery slot opens with ``code``."""
        slot = self.data.get("recovery")
        if not slot:
            raise _DAMAGED
        private = _key_from_seed(_normalize_code(code), _unb64(slot["salt"]), b"klucznik recovery v1")
        return self._open_slot(
            "recovery",
            "",
            slot,
            private,
            wrong_key=WrongCredentials(
                Text(
                    "Ten kod odzyskiwania nie pasuje do tej instancji. Porównaj go znak po znaku z wydrukiem: "
                    "kod składa się z liter A–Z i cyfr 2–7.",
                    "This recovery code does not match this instance. Compare it character by character with "
                    "your printout: the code is made of the letters A–Z and the digits 2–7.",
                )
            ),
        )

    def set_unattended(self, machine_key: bytes, dmk: bytes) -> None:
        """Seal the DMK to the key held in the unattended-unseal key file."""
        private = _key_from_seed(machine_key, b"", b"klucznik unattended v1")
        self.data["unattended"] = {
            "public_key": _b64(_raw_public(private.public_key())),
            "dmk": seal(dmk, private.public_key(), self._aad("unattended")),
        }

    def unlock_unattended(self, machine_key: bytes) -> bytes:
        return self.unattended_keys(machine_key).current

    def unattended_keys(self, machine_key: bytes) -> Keys:
        """Every key the unattended slot opens with the key file's ``machine_key``."""
        slot = self.data.get("unattended")
        if not slot:
            raise WrongCredentials(
                Text(
                    "Ta instancja nie ma włączonego automatycznego odblokowania.",
                    "This instance has no unattended unseal configured.",
                )
            )
        private = _key_from_seed(machine_key, b"", b"klucznik unattended v1")
        return self._open_slot(
            "unattended",
            "",
            slot,
            private,
            wrong_key=WrongCredentials(
                Text(
                    "Plik klucza odblokowania nie pasuje do tej instancji.",
                    "The unseal key file does not match this instance.",
                )
            ),
        )

    # -- rotation ----------------------------------------------------------------------------------------

    def begin_rotation(self, new_dmk: bytes, *, drop_user: str | None = None) -> None:
        """Step 1: drop ``drop_user``'s slot and seal ``new_dmk`` to every remaining slot as pending."""
        if drop_user is not None:
            self.remove_user(drop_user)
        pending_epoch = self.epoch + 1
        self.data["pending_epoch"] = pending_epoch
        for kind, name, slot in self._slots():
            public = X25519PublicKey.from_public_bytes(_unb64(slot["public_key"]))
            slot["pending_dmk"] = seal(
                new_dmk, public, self._aad(kind, name, epoch=pending_epoch, role="pending|")
            )

    def finish_rotation(self, old_dmk: bytes, new_dmk: bytes, *, now: float | None = None) -> None:
        """Step 3, once the database opens with ``new_dmk``: it becomes current, ``old_dmk`` the newest previous."""
        epoch = int(self.data.pop("pending_epoch"))
        now = time.time() if now is None else now
        for kind, name, slot in self._slots():
            public = X25519PublicKey.from_public_bytes(_unb64(slot["public_key"]))
            slot.pop("pending_dmk", None)
            slot["dmk"] = seal(new_dmk, public, self._aad(kind, name, epoch=epoch))
            retired = {
                "epoch": epoch - 1,
                "retired_at": int(now),
                "dmk": seal(old_dmk, public, self._aad(kind, name, epoch=epoch - 1, role="previous|")),
            }
            kept = [
                entry
                for entry in slot.get("previous", [])
                if now - entry["retired_at"] < RETAIN_PREVIOUS_SECONDS
            ]
            slot["previous"] = [retired, *kept][:MAX_PREVIOUS_KEYS]
        self.data["epoch"] = epoch

    def abandon_rotation(self) -> None:
        """An interrupted rotation whose database kept the current key: forget the pending key."""
        self.data.pop("pending_epoch", None)
        for _kind, _name, slot in self._slots():
            slot.pop("pending_dmk", None)


def _kdf_args(stored: dict[str, Any]) -> dict[str, int]:
    return {k: int(stored[k]) for k in ("time_cost", "memory_kib", "parallelism")}


def _wrong_password() -> WrongCredentials:
    return WrongCredentials(
        Text(
            "Nieprawidłowy login lub hasło. Sprawdź, czy nie jest włączony Caps Lock.",
            "Wrong username or password. Check that Caps Lock is off.",
        )
    )
