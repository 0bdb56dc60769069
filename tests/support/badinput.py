"""Assertions of the bad-input suite (tests/badinput/): a refusal is plain, and nothing stored changed."""

from __future__ import annotations

import re
from typing import Any

from klucznik.instance.store import Store
from tests.support.instances import dump

#: What must never reach a visitor: parts of a Python traceback or of the stack's internals.
TRACE_MARKERS = ("Traceback", 'File "/', "sqlcipher3", "werkzeug.", "OverflowError", "Internal Server Error")


def stored(store: Store) -> tuple[dict[str, Any], bytes]:
    """Every row of every table and the keyring file: compared before and after a case."""
    return dump(store), store.keyring_path.read_bytes()


def body(response: Any) -> str:
    return response.get_data(as_text=True)


def refused(response: Any, statuses: int | tuple[int, ...], *fragments: str) -> str:
    """The answer has one of ``statuses`` (never 500), no traceback, and every fragment of the message."""
    statuses = (statuses,) if isinstance(statuses, int) else statuses
    text = body(response)
    assert response.status_code != 500, text[:1000]
    assert response.status_code in statuses, (response.status_code, text[:1000])
    for marker in TRACE_MARKERS:
        assert marker not in text, (marker, text[:1000])
    plain = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    for fragment in fragments:
        assert fragment in plain, (fragment, plain[:2000])
    return plain


def same_site(location: str) -> bool:
    """A redirect target a browser keeps on this site: a path, no scheme/host, no characters it would drop."""
    return (
        location.startswith("/")
        and not location.startswith("//")
        and not re.search(r"[\x00-\x20\x7f\\]", location)
        and "://" not in location.split("?")[0]
    )
