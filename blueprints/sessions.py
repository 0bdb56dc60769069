"""Web sessions kept on the server: the cookie carries only a random id, and a restart forgets them all."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import field


@dataclass
class WebSession:
    """A server-side session: the cookie carries only its random id."""

    username: str
    created: float
    last_seen: float
    ip: str | None = None
    #: The recovery code right after setup, shown until the administrator confirms saving it (memory only).
    pending_recovery_code: str | None = None


@dataclass
class SessionRegistry:
    """Live sessions, in memory only: a restart (or seal) logs everyone out."""

    sessions: dict[str, WebSession] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, username: str, ip: str | None, *, pending_recovery_code: str | None = None) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self.lock:
            self.sessions[sid] = WebSession(username, now, now, ip, pending_recovery_code)
        return sid

    def touch(self, sid: str | None, idle_seconds: float) -> WebSession | None:
        """The session ``sid`` if it is alive (and mark it used), else None."""
        if not sid:
            return None
        now = time.monotonic()
        with self.lock:
            live = self.sessions.get(sid)
            if live is None:
                return None
            if now - live.last_seen > idle_seconds:
                del self.sessions[sid]
                return None
            live.last_seen = now
            return live

    def end(self, sid: str | None) -> None:
        with self.lock:
            self.sessions.pop(sid or "", None)

    def end_user(self, username: str, *, keep: str | None = None) -> None:
        """End every session of ``username`` except ``keep``."""
        with self.lock:
            for sid in [s for s, v in self.sessions.items() if v.username == username and s != keep]:
                del self.sessions[sid]

    def clear(self) -> None:
        with self.lock:
            self.sessions.clear()
