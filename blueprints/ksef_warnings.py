"""KSeF's technical warnings (``X-System-Warning``) on the pages that talk to KSeF: logged once, shown.

The KSeF clients a request opened (``g.wizard_ksef_clients``, and ``g.ksef_access_clients`` of
:mod:`blueprints.ksef_access`: the grant check, the office's connection check) collect the warnings of
their answers (:mod:`klucznik.ksef.warnings`). The page template asks ``ksef_warnings(client_id, since)``
for the notices to show: the client's recorded warnings from ``since`` on and those this request has just
received. After the request every new warning is written to ``ksef_operations`` (one row each, operation
``system_warning``), so the notice stays on the page on the next visits of the same attempt.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import g
from flask import request

from blueprints.context import get_db
from blueprints.context import get_store
from blueprints.context import message
from blueprints.context import now
from blueprints.htmx import htmx
from klucznik.ksef.warnings import SystemWarning
from klucznik.records import ksef_log

bp = Blueprint("ksef_warnings", __name__)
log = logging.getLogger("klucznik.ksef")


def _clients() -> tuple:
    return (*g.get("wizard_ksef_clients", ()), *g.get("ksef_access_clients", ()))


def _pending() -> list[SystemWarning]:
    """Warnings this request's KSeF clients received and nobody recorded yet."""
    pending = g.setdefault("ksef_warnings_pending", [])
    for client in _clients():
        pending.extend(client.take_warnings())
    return pending


def _client_id() -> int | None:
    value = (request.view_args or {}).get("client_id")
    return value if isinstance(value, int) else None


def ksef_warnings(client_id: int, since: datetime | None = None) -> list[str]:
    """The notices to show for ``client_id``: recorded from ``since`` on, then this request's, once each."""
    seen: set[tuple[str, str]] = set()
    shown = []
    recorded = [
        SystemWarning(row["code"], row["message"], row["operation"])
        for row in ksef_log.warnings_since(get_db(), client_id, since)
    ]
    for warning in (*recorded, *_pending()):
        key = (warning.code, warning.message)
        if key not in seen:
            seen.add(key)
            shown.append(message(warning.text))
    return shown


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"ksef_warnings": ksef_warnings, "is_htmx": bool(htmx)}


@bp.after_app_request
def _record(response):
    """Write the request's new warnings to the KSeF log (one write for all of them)."""
    if not _clients():
        return response
    pending = _pending()
    if pending:
        g.ksef_warnings_pending = []
        client_id = _client_id()
        at = now()
        with get_store().write() as db:
            for warning in pending:
                log.warning(
                    "KSeF X-System-Warning [%s] on %s: %s", warning.code, warning.operation, warning.message
                )
                ksef_log.record_warning(
                    db,
                    client_id=client_id,
                    at=at,
                    code=warning.code,
                    message=warning.message,
                    operation=warning.operation,
                )
    return response
