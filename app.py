"""The Klucznik web portal: ``create_app()`` assembles Flask, the sealed store and the blueprints.

Configuration comes from defaults, then environment variables (``KLUCZNIK_*``, listed in the README and
checked by ``tests/test_docs.py``), then ``test_config``. The session secret is random per process and
never stored: a restart logs everyone out, and a copy of ``instance/`` cannot forge a login.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from flask import Flask
from flask import Request

#: Every environment variable the portal reads, with its default (README's configuration table).
SETTINGS = {
    "KLUCZNIK_INSTANCE": "./instance",
    "KLUCZNIK_HOST": "127.0.0.1",
    "KLUCZNIK_PORT": "8000",
    "KLUCZNIK_HTTPS": "0",
    "KLUCZNIK_UNSEAL_KEY_FILE": "",
    "KLUCZNIK_IDLE_MINUTES": "30",
    "KLUCZNIK_TRUSTED_HOSTS": "",
}


class PortalRequest(Request):
    """Uploaded files stay in memory (bounded by ``MAX_CONTENT_LENGTH``): a private key never touches the disk.

    Werkzeug would otherwise spool any upload over 500 KiB into a temporary file.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> BytesIO:
        return BytesIO()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the portal."""
    root = Path(__file__).resolve().parent
    instance = os.environ.get("KLUCZNIK_INSTANCE") or str(root / "instance")
    app = Flask(__name__, instance_path=str(Path(instance).resolve()), instance_relative_config=True)
    app.request_class = PortalRequest
    https = os.environ.get("KLUCZNIK_HTTPS", "0") == "1"
    trusted = [h.strip() for h in os.environ.get("KLUCZNIK_TRUSTED_HOSTS", "").split(",") if h.strip()]
    app.config.from_mapping(
        # Random per process, never stored (see the module docstring).
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_NAME="__Host-klucznik" if https else "klucznik",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        PREFERRED_URL_SCHEME="https" if https else "http",
        KLUCZNIK_HTTPS=https,
        KLUCZNIK_IDLE_TIMEOUT=timedelta(minutes=int(os.environ.get("KLUCZNIK_IDLE_MINUTES", "30"))),
        KLUCZNIK_UNSEAL_KEY_FILE=os.environ.get("KLUCZNIK_UNSEAL_KEY_FILE") or None,
        KLUCZNIK_KDF=None,
        KLUCZNIK_LOGIN_ATTEMPTS=5,
        KLUCZNIK_LOGIN_WINDOW=60,
        # Failures from one address, whatever the usernames (password spraying), per window.
        KLUCZNIK_LOGIN_ATTEMPTS_PER_ADDRESS=10,
        # Failed logins are written to the audit log as summaries at most this often (and at the next login).
        KLUCZNIK_FAILED_LOGIN_SUMMARY_SECONDS=60,
        TRUSTED_HOSTS=trusted or None,
        # Every form is small: certificates and keys ≤ 64 KiB each, signed XML ≤ 1 MiB. Staying under
        # Werkzeug's 500 KiB spool threshold per file keeps uploaded keys off the disk.
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,
        MAX_FORM_PARTS=50,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (idle-limited) session
        WTF_CSRF_SSL_STRICT=True,
        # No WTForms message reaches a page (the domain and the error pages say what is wrong), so its
        # catalogue is not parsed again for every request that builds a form.
        WTF_I18N_ENABLED=False,
        BABEL_DEFAULT_LOCALE="pl",
        BABEL_TRANSLATION_DIRECTORIES=str(root / "translations"),
    )
    if test_config:
        app.config.update(test_config)
    logging.getLogger("waitress").setLevel(logging.INFO)

    from blueprints import register_blueprints
    from blueprints import web

    web.init_app(app)
    register_blueprints(app)
    return app
