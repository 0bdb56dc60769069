"""The KSeF environments: the API host (with ``/v2``), the QR host and Latarnia, for each of them.

TEST and DEMO accept test data only; PRD is production. The project's own sandbox follows the same layout
under one root (``<root>/v2``, ``<root>/qr``, ``<root>/latarnia``), so the portal points at it like at any
other environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klucznik.ksef.errors import KsefError
from klucznik.text import Text

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Environment:
    """The hosts of one KSeF environment: the API (with ``/v2``), the QR host and Latarnia."""

    name: str
    api_url: str
    qr_url: str
    latarnia_url: str | None


ENVIRONMENTS: Mapping[str, Environment] = {
    "test": Environment(
        "test",
        "https://api-test.ksef.mf.gov.pl/v2",
        "https://qr-test.ksef.mf.gov.pl",
        "https://api-latarnia-test.ksef.mf.gov.pl",
    ),
    # Latarnia has no documented DEMO host.
    "demo": Environment("demo", "https://api-demo.ksef.mf.gov.pl/v2", "https://qr-demo.ksef.mf.gov.pl", None),
    "prod": Environment(
        "prod",
        "https://api.ksef.mf.gov.pl/v2",
        "https://qr.ksef.mf.gov.pl",
        "https://api-latarnia.ksef.mf.gov.pl",
    ),
}


def environment(name: str, sandbox_url: str | None = None) -> Environment:
    """The hosts of ``name`` ("test", "demo", "prod" or "sandbox"; the sandbox at ``sandbox_url``)."""
    if name == "sandbox":
        root = (sandbox_url or SANDBOX_DEFAULT_URL).rstrip("/")
        root = root.removesuffix("/v2")
        return Environment("sandbox", f"{root}/v2", f"{root}/qr", f"{root}/latarnia")
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise KsefError(
            Text(
                f"Nieznane środowisko KSeF „{name}”. Wybierz test, demo, prod albo sandbox.",
                f"Unknown KSeF environment '{name}'. Choose test, demo, prod or sandbox.",
            ),
            code="ksef_environment",
        ) from None


def base_url_for(environment_name: str, sandbox_url: str | None = None) -> str:
    """The API base URL (ending in ``/v2``) of an environment; pass it to :class:`KsefClient`."""
    return environment(environment_name, sandbox_url).api_url


def latarnia_for(api_url: str) -> str | None:
    """Latarnia's host for a known API URL; for any other URL, the sandbox layout (``<root>/latarnia``)."""
    for env in ENVIRONMENTS.values():
        if env.api_url == api_url:
            return env.latarnia_url
    return environment("sandbox", api_url).latarnia_url
