"""Is KSeF up? Latarnia's announcements and the portal's own probe, in three honest states.

* ``available``: KSeF works (Latarnia says so; on TEST/DEMO the probe says so, Latarnia being stale there);
* ``latarnia_unreachable``: Latarnia did not answer; the portal's own probe (a challenge call) tells whether
  KSeF itself answers (``probe_ok``);
* ``announced``: Latarnia announces a failure or maintenance, with its messages, start and end.

A fourth reading, ``down``, is the probe failing where it decides (TEST/DEMO) or where Latarnia is silent
too. Latarnia is never the only signal (it has been down for hours; on TEST it kept a stale TOTAL_FAILURE).
:class:`AvailabilityMonitor` caches the answer and refreshes it in a background thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from klucznik.clock import Clock
from klucznik.clock import utcnow
from klucznik.ksef.client import KsefClient
from klucznik.ksef.errors import KsefError
from klucznik.ksef.models import AvailabilityMessage
from klucznik.text import Text

log = logging.getLogger("klucznik.status")

#: Environments whose Latarnia is known to answer stale states: the portal's own probe decides there.
PROBE_DECIDES = ("test", "demo")

OFFLINE_MEANING = Text(
    "Co to znaczy dla biura: w czasie ogłoszonej awarii lub niedostępności KSeF obowiązują tryby offline — "
    "faktury wystawia się poza KSeF i wysyła do KSeF po jej zakończeniu. Do wystawienia faktury w trybie "
    "offline (kod QR „KOD II”) potrzebny jest ważny certyfikat KSeF typu Offline: sprawdź w tabeli poniżej, "
    "którzy klienci go mają.",
    "What it means for the office: during an announced KSeF failure or unavailability the offline modes apply "
    "— invoices are issued outside KSeF and sent once it is back. Issuing an offline invoice (the \"KOD II\" "
    "QR code) needs a valid KSeF Offline certificate: the table below shows which clients have one.",
)


@dataclass(frozen=True)
class AvailabilityReport:
    """What the portal knows about KSeF's availability at ``checked_at``."""

    state: str  # available | latarnia_unreachable | announced | down
    environment: str
    checked_at: datetime
    latarnia_status: str | None = None
    messages: tuple[AvailabilityMessage, ...] = ()
    latarnia_error: Text | None = None
    probe_ok: bool | None = None
    probe_error: Text | None = None

    @property
    def probe_decides(self) -> bool:
        """True on TEST/DEMO, where Latarnia's answers are known to be stale."""
        return self.environment in PROBE_DECIDES


def _probe(ksef: KsefClient) -> Text | None:
    """The portal's own probe: one challenge call (``None`` when KSeF answered)."""
    try:
        ksef.challenge()
    except KsefError as exc:
        return exc.text
    return None


def check_availability(ksef: KsefClient, *, environment: str, at: datetime) -> AvailabilityReport:
    """Ask Latarnia, and probe KSeF itself where Latarnia cannot decide (see the module docstring)."""
    status = messages = latarnia_error = None
    try:
        answer = ksef.latarnia.status()
        status, messages = answer.status, answer.messages
    except KsefError as exc:
        latarnia_error = exc.text
    probe_decides = environment in PROBE_DECIDES
    if status is not None and not probe_decides:
        state = "available" if status == "AVAILABLE" else "announced"
        return AvailabilityReport(state=state, environment=environment, checked_at=at, latarnia_status=status,
                                  messages=messages or ())
    probe_error = _probe(ksef)
    if probe_decides:
        state = "available" if probe_error is None else "down"
    else:
        state = "latarnia_unreachable" if probe_error is None else "down"
    return AvailabilityReport(
        state=state,
        environment=environment,
        checked_at=at,
        latarnia_status=status,
        messages=messages or (),
        latarnia_error=latarnia_error,
        probe_ok=probe_error is None,
        probe_error=probe_error,
    )


class AvailabilityMonitor:
    """The last report, refreshed in a background thread when older than ``ttl`` (one refresh at a time).

    ``source`` returns ``(ksef_client, environment)`` for the office's current settings, or ``None`` when
    there is nothing to ask yet (a sealed instance); it runs in the refreshing thread.
    """

    def __init__(
        self,
        source: Callable[[], tuple[KsefClient, str] | None],
        *,
        ttl: timedelta = timedelta(minutes=2),
        clock: Clock = utcnow,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock
        self._report: AvailabilityReport | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def current(self) -> AvailabilityReport | None:
        """The cached report (``None`` before the first refresh ends); starts a refresh when it is stale."""
        with self._lock:
            report = self._report
            stale = report is None or self.clock() - report.checked_at >= self.ttl
            if stale and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self.refresh, name="klucznik-availability", daemon=True)
                self._thread.start()
        return report

    def refresh(self) -> AvailabilityReport | None:
        """Ask now (in the calling thread) and keep the answer."""
        try:
            found = self.source()
            if found is None:
                return None
            ksef, environment = found
            with ksef:
                report = check_availability(ksef, environment=environment, at=self.clock())
        except Exception:  # a background refresh must never die silently and leave the page stale
            log.exception("KSeF availability refresh failed")
            return None
        with self._lock:
            self._report = report
        return report

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for a running refresh (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def forget(self) -> None:
        """Drop the cached report (the office changed its KSeF environment)."""
        with self._lock:
            self._report = None
