"""The official KSeF OpenAPI document, loaded once, for the sandbox's input validation and the contract tests.

The sandbox answers an invalid body or parameter the way KSeF does (400, code 21405, the validator's
text in ``details``); checking with the official document itself keeps the sandbox exactly as strict as
the contract, no more and no less.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

from openapi_core import Config
from openapi_core import OpenAPI
from openapi_core.validation.request.exceptions import SecurityValidationError

#: A byte-identical copy of the official document (KSeF API 2.7.0, build 2.7.0-te, as published in
#: CIRFMF/ksef-api) ships with the sandbox, so it runs wherever the portal is installed.
SPEC_CANDIDATES = (Path(__file__).resolve().parent / "open-api-2.7.json",)


@functools.cache
def spec_document() -> dict:
    """The official OpenAPI document as a dict (read once)."""
    for candidate in SPEC_CANDIDATES:
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError("open-api-2.7.json (official KSeF OpenAPI document) not found")


@functools.cache
def openapi(server: str = "/v2") -> OpenAPI:
    """The document as an openapi-core object whose server is ``server`` (relative by default)."""
    document = copy.deepcopy(spec_document())
    document["servers"] = [{"url": server}]
    return OpenAPI.from_dict(document, config=Config(extra_media_type_deserializers=_DESERIALIZERS))


def documented_methods(path: str) -> list[str]:
    """The methods the document lists for ``path`` (below ``/v2``); a literal path wins over a template."""
    real = path.strip("/").split("/")
    best: tuple[int, dict] | None = None
    for candidate, methods in spec_document()["paths"].items():
        parts = candidate.strip("/").split("/")
        if len(parts) != len(real):
            continue
        if all(p.startswith("{") or p == r for p, r in zip(parts, real, strict=True)):
            literal = sum(1 for p in parts if not p.startswith("{"))
            if best is None or literal > best[0]:
                best = (literal, methods)
    if best is None:
        return []
    return [m.upper() for m in best[1] if m in ("get", "put", "post", "delete", "patch")]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _json(value: bytes | str):
    return json.loads(value)


# openapi-core parses XML into an Element (the document types the body as a string) and does not know
# application/problem+json; these keep both as the document means them.
_DESERIALIZERS = {"application/xml": _text, "application/problem+json": _json}


def request_problems(request) -> list[str]:
    """Validator messages for a Werkzeug/Flask request (parameters and body); empty when valid."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest

    try:
        openapi().validate_request(WerkzeugOpenAPIRequest(request))
    except SecurityValidationError:
        return []  # the views authenticate themselves (and answer 401 in KSeF's shape)
    except Exception as exc:  # openapi-core raises one of many classes; all mean "invalid input"
        return _messages(exc)
    return []


def _said(value: object) -> str:
    """``str(value)``, or its class name when even that fails (openapi-core's messages decode the body as
    UTF-8 and raise on a body that is not)."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - any failure to describe the error
        return type(value).__name__


def _messages(exc: BaseException) -> list[str]:
    messages = [_said(exc).split(":")[0]]
    cause = exc.__cause__
    for error in getattr(cause, "schema_errors", ()) or ():
        messages.append(_said(getattr(error, "message", error)))
    if cause is not None and not getattr(cause, "schema_errors", None):
        messages.append(_said(cause)[:300])
    return messages
