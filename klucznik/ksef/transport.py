"""How the portal talks to KSeF over HTTP: timeouts, retries, ``Retry-After``, bearer tokens.

* One :class:`requests.Session` per client, an :class:`~requests.adapters.HTTPAdapter` mounted for
  connection pooling, and a :class:`~requests.auth.AuthBase` that resolves the bearer token at the moment
  each request is sent, so a retried request always carries a fresh access token.
* Every call has a timeout. Retries are done here, not by urllib3, because the rules depend on meaning:
  a 5xx answer, a read timeout or a dropped connection is retried only for calls that are safe to repeat
  (GETs, DELETEs and the read-only POSTs such as queries). A request that never left the machine
  (connection refused, connect timeout) is safe to repeat for every call. A 429 means KSeF did not process
  the request, so every call waits for ``Retry-After`` (bounded) and tries again. A non-idempotent POST
  (submitting a signed document, redeeming tokens, enrolling a certificate, granting permissions) is
  never repeated blindly: the caller decides.
* Access tokens live in a :class:`TokenHolder` that refreshes them shortly before they expire (the clock
  is injectable, as is ``sleep``, so tests never wait for real).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import NameResolutionError
from urllib3.exceptions import NewConnectionError

from klucznik.clock import Clock
from klucznik.clock import utcnow
from klucznik.ksef.errors import KsefError
from klucznik.ksef.errors import error_from_response
from klucznik.ksef.errors import retry_after_seconds
from klucznik.ksef.models import AuthTokens
from klucznik.ksef.models import TokenInfo
from klucznik.ksef.warnings import SystemWarning
from klucznik.ksef.warnings import parse as parse_warnings
from klucznik.text import Text


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``attempts`` counts tries of a retryable failure (5xx, timeout, dropped connection) including the
    first; waits grow as ``backoff * 2**n`` up to ``backoff_max``. A 429 is retried at most
    ``rate_limit_attempts`` times, waiting ``Retry-After`` seconds, but never longer than
    ``max_retry_after`` (a longer wait is reported to the caller instead).
    """

    attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 8.0
    rate_limit_attempts: int = 3
    max_retry_after: float = 60.0

    def backoff_for(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return min(self.backoff * 2 ** (retry - 1), self.backoff_max)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (so repeating it is always safe)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | NameResolutionError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            cause = reason
            continue
        if cause.args and isinstance(cause.args[0], BaseException):
            cause = cause.args[0]
            continue
        cause = cause.__cause__ or cause.__context__
    return False


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>``; the token may be a string or a callable asked on every send."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token() if callable(self._token) else self._token
        request.headers["Authorization"] = f"Bearer {token}"
        return request


class TokenHolder:
    """Keeps an access token fresh: refreshes it when it is within ``margin`` of expiring.

    Thread-safe; one refresh at a time. ``refresher`` takes the refresh token and returns a new access
    :class:`TokenInfo` (normally :meth:`KsefClient.refresh`).
    """

    def __init__(
        self,
        tokens: AuthTokens,
        *,
        refresher: Callable[[str], TokenInfo],
        clock: Clock = utcnow,
        margin: timedelta = timedelta(seconds=60),
    ) -> None:
        self._access = tokens.access_token
        self._refresh = tokens.refresh_token
        self._refresher = refresher
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self.refresh_count = 0

    @property
    def refresh_token(self) -> TokenInfo:
        """The refresh token (KSeF does not rotate it)."""
        return self._refresh

    @property
    def access(self) -> TokenInfo:
        """The current access token, without refreshing."""
        return self._access

    def access_token(self) -> str:
        """A valid access token, refreshed first if it expires within the margin."""
        with self._lock:
            now = self._clock()
            if self._access.valid_until - self._margin > now:
                return self._access.token
            if self._refresh.valid_until <= now:
                raise KsefError(
                    Text(
                        "Sesja KSeF wygasła (token odświeżania jest ważny najwyżej 7 dni). Uwierzytelnij się ponownie.",
                        "The KSeF session has expired (a refresh token lasts at most 7 days). Authenticate again.",
                    ),
                    code="ksef_session_expired",
                )
            self._access = self._refresher(self._refresh.token)
            self.refresh_count += 1
            return self._access.token


class Transport:
    """One pooled HTTP session with KSeF's retry rules (see the module docstring); shared by the API client
    and Latarnia's.

    ``warnings`` collects every ``X-System-Warning`` KSeF sent (non-blocking technical warnings, e.g.
    ``[sig-001]`` for a signature the strict XAdES profile will refuse), as sent; ``system_warnings`` the
    same read into :class:`~klucznik.ksef.warnings.SystemWarning` with the call that got each. The caller
    shows and logs them (:meth:`take_warnings` hands over the ones not taken yet).
    """

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        retries: RetryPolicy | int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        problem_details: bool = True,
        user_agent: str = "Klucznik (KSeF portal)",
        pacer: Callable[[str, str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        #: Called with (method, url) before every request, retries included: a caller that shares a budget
        #: of KSeF's rate limits between clients (e.g. a check of all clients) waits there.
        self.pacer = pacer
        if isinstance(retries, int):
            retries = RetryPolicy(attempts=retries)
        self.retry = retries or RetryPolicy()
        self.sleep = sleep
        self.warnings: list[str] = []
        self.system_warnings: list[SystemWarning] = []
        self._taken = 0
        self._warnings_lock = threading.Lock()
        self.session = session or requests.Session()
        # Retries are ours (see the module docstring), so urllib3 must not retry on its own.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        if problem_details:
            self.session.headers["X-Error-Format"] = "problem-details"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        expected: Iterable[int],
        **kwargs: Any,
    ) -> requests.Response:
        """Send with timeouts and the retry rules of the module docstring; return an expected answer."""
        expected = tuple(expected)
        failures = 0
        rate_limited = 0
        while True:
            if self.pacer is not None:
                self.pacer(method, url)
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                if (idempotent or _never_sent(exc)) and failures < self.retry.attempts:
                    self.sleep(self.retry.backoff_for(failures))
                    continue
                raise _transport_error(exc) from exc
            warning = response.headers.get("X-System-Warning")
            if warning:
                self._note_warning(warning, method, url)
            if response.status_code in expected:
                return response
            if response.status_code == 429:
                rate_limited += 1
                wait = retry_after_seconds(response)
                if wait is None:
                    wait = self.retry.backoff_for(rate_limited)
                if rate_limited <= self.retry.rate_limit_attempts and wait <= self.retry.max_retry_after:
                    self.sleep(wait)
                    continue
                raise error_from_response(response)
            if response.status_code >= 500 and idempotent:
                failures += 1
                if failures < self.retry.attempts:
                    self.sleep(self.retry.backoff_for(failures))
                    continue
            raise error_from_response(response)

    def _note_warning(self, header: str, method: str, url: str) -> None:
        operation = f"{method.upper()} {urlsplit(url).path}"
        with self._warnings_lock:
            self.warnings.append(header)
            self.system_warnings.extend(parse_warnings(header, operation=operation))

    def take_warnings(self) -> list[SystemWarning]:
        """The warnings received since the last call (each is handed over once)."""
        with self._warnings_lock:
            taken = self.system_warnings[self._taken :]
            self._taken = len(self.system_warnings)
            return taken

    def json(
        self, method: str, url: str, *, idempotent: bool, expected: Iterable[int] = (200,), **kwargs: Any
    ) -> Any:
        """:meth:`request`, then the answer's JSON (``None`` for 204 or an empty body)."""
        response = self.request(method, url, idempotent=idempotent, expected=expected, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise KsefError(
                Text(
                    "KSeF zwrócił odpowiedź, której portal nie rozumie. Spróbuj ponownie później.",
                    "KSeF returned an answer the portal does not understand. Try again later.",
                ),
                code="ksef_bad_answer",
                http_status=response.status_code,
            ) from exc


def _transport_error(exc: requests.RequestException) -> KsefError:
    """No answer at all: a timeout, or a connection that failed or was cut."""
    if isinstance(exc, requests.Timeout):
        return KsefError(
            Text(
                "KSeF nie odpowiedział na czas. Spróbuj ponownie za chwilę; jeśli to się powtarza, sprawdź "
                "komunikaty o dostępności KSeF.",
                "KSeF did not answer in time. Try again shortly; if it keeps happening, check KSeF's "
                "availability notices.",
            ),
            code="ksef_timeout",
        )
    return KsefError(
        Text(
            "Nie udało się połączyć z KSeF albo połączenie zostało przerwane. Sprawdź połączenie z internetem "
            "i spróbuj ponownie.",
            "Could not connect to KSeF, or the connection was cut. Check the internet connection and try "
            "again.",
        ),
        code="ksef_unreachable",
    )
