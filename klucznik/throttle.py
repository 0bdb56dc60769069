"""Login throttling and the record of failed logins.

:class:`LoginThrottle`: at most N failures per window for each (username, address) pair, and at most M
failures per window from one address whatever the usernames (password spraying). A back-off, not a
lock-out: after the window passes the user can try again, and one attacker cannot lock out a colleague
who logs in from another address.

:class:`FailedLogins`: failed logins are counted in memory and written to the audit log as one summary
per (username, address), at most once a minute and at the next successful login, so a flood of wrong
passwords costs no database write (and no snapshot) per attempt.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


class LoginThrottle:
    """Counts failed logins per key in a sliding window."""

    def __init__(
        self,
        attempts: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        per_address: int = 10,
    ) -> None:
        self.attempts = attempts
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float, *, table: dict | None = None) -> deque[float]:
        failures = (self._failures if table is None else table).setdefault(key, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def wait_seconds(self, username: str, address: str) -> int:
        """Seconds until ``username`` may try again from ``address`` (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [
                max(1, int(failures[0] + self.window - now + 0.999))
                for failures, limit in (
                    (self._recent((username, address), now), self.attempts),
                    (self._recent(("", address), now, table=self._by_address), self.per_address),
                )
                if len(failures) >= limit
            ]
            return max(waits, default=0)

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._recent((username, address), now).append(now)
            self._recent(("", address), now, table=self._by_address).append(now)
            for table in (self._failures, self._by_address):
                if len(table) > 100_000:  # forget idle keys (a flood of names must not grow memory)
                    for key in [k for k, v in table.items() if not v or now - v[-1] >= self.window]:
                        del table[key]

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username, address), None)


@dataclass
class FailedLoginSummary:
    """Failed logins of one username from one address since the last summary was written."""

    username: str
    address: str
    count: int
    first: datetime
    last: datetime


class FailedLogins:
    """Failed logins kept in memory until they are written as summaries (see the module docstring)."""

    #: Distinct (username, address) pairs kept; beyond it, failures count under one "(other)" entry.
    MAX_KEYS = 1000

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._pending: dict[tuple[str, str], FailedLoginSummary] = {}
        self._last_flush: datetime | None = None
        self._lock = threading.Lock()

    def add(self, username: str, address: str, *, at: datetime) -> None:
        key = (username[:64], address[:64])
        with self._lock:
            if key not in self._pending and len(self._pending) >= self.MAX_KEYS:
                key = ("(other)", "")
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = FailedLoginSummary(key[0], key[1], 1, at, at)
            else:
                entry.count += 1
                entry.last = max(entry.last, at)

    def due(self, *, at: datetime) -> bool:
        """True when there is something to write and the last summary is at least ``interval`` old."""
        with self._lock:
            if not self._pending:
                return False
            return self._last_flush is None or (at - self._last_flush).total_seconds() >= self.interval

    def drain(self, *, at: datetime) -> list[FailedLoginSummary]:
        """Take every pending summary (the caller writes them); marks the time of this write, if any."""
        with self._lock:
            out = list(self._pending.values())
            self._pending.clear()
            if out:
                self._last_flush = at
            return out

    def put_back(self, summaries: list[FailedLoginSummary]) -> None:
        """Keep summaries whose write failed for the next time."""
        with self._lock:
            for item in summaries:
                key = (item.username, item.address)
                entry = self._pending.get(key)
                if entry is None:
                    self._pending[key] = item
                else:
                    entry.count += item.count
                    entry.first = min(entry.first, item.first)
