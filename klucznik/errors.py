"""One root for every error the domain raises, each carrying a :class:`~klucznik.text.Text`.

The web layer and the console commands show the text as it is: it is written for accountants and says
what is wrong and what to do.
"""

from __future__ import annotations

from klucznik.text import Text


class PortalError(Exception):
    """Root of the domain's errors."""

    code = "portal_error"

    def __init__(self, text: Text, *, code: str | None = None) -> None:
        super().__init__(text.en)
        self.text = text
        if code is not None:
            self.code = code

    @property
    def message_pl(self) -> str:
        return self.text.pl

    @property
    def message_en(self) -> str:
        return self.text.en

    def message(self, lang: str) -> str:
        """The message in ``lang`` ("pl" or "en")."""
        return self.text.get(lang)


class ValidationError(PortalError, ValueError):
    """Input that cannot be accepted; nothing was stored."""

    code = "invalid"

    def __init__(self, text: Text, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(text, code=code)
        self.field = field


class FieldErrors(ValidationError):
    """Several fields of one form are wrong; all are reported at once (``errors``: field name → error)."""

    def __init__(self, errors: dict[str, ValidationError]) -> None:
        first = next(iter(errors.values()))
        super().__init__(first.text, field=first.field)
        self.errors = errors


class StorageError(PortalError):
    """The encrypted instance cannot be opened or used."""

    code = "storage"


class Sealed(StorageError):
    """The portal is sealed: nobody has logged in since it started."""

    code = "sealed"


class WrongCredentials(StorageError):
    """A password, recovery code or key file that does not open the keyring."""

    code = "wrong_credentials"


class InstanceDamaged(StorageError):
    """The database or keyring is not ours, or is damaged."""

    code = "instance_damaged"


class NotFound(PortalError, LookupError):
    """A record that does not exist."""

    code = "not_found"


class Conflict(PortalError):
    """The record exists but its state does not allow this (e.g. an archived client is read-only)."""

    code = "conflict"
