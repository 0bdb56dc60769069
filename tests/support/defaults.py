"""The values every test shares: the administrator of a test instance, a client's NIP, the pinned moment."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-1"
CLIENT_NIP = "5261040828"
#: The moment the tests live in (every record and check takes an explicit time).
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
