"""One root for every error the domain raises, each with a message in Polish and in English.

The web layer and the CLI show ``message_pl`` or ``message_en`` as they are: the texts are written
for accountants, and say what is wrong and what to do.
"""

from __future__ import annotations


class PortalError(Exception):
    """Root of the domain's errors."""

    code = "portal_error"

    def __init__(self, message_pl: str, message_en: str, *, code: str | None = None) -> None:
        super().__init__(message_en)
        self.message_pl = message_pl
        self.message_en = message_en
        if code is not None:
            self.code = code

    def message(self, lang: str) -> str:
        """The message in ``lang`` ("pl" or "en")."""
        return self.message_en if lang == "en" else self.message_pl


class ValidationError(PortalError, ValueError):
    """Input that cannot be accepted; nothing was stored."""

    code = "invalid"

    def __init__(self, message_pl: str, message_en: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message_pl, message_en, code=code)
        self.field = field


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
