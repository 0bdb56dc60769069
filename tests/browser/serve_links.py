"""The portal for the signing-link browser test: like ``tests.browser.serve``, on the real clock (the link page
takes its challenge from the sandbox, which lives on the real clock too)."""

from __future__ import annotations

from waitress import create_server

from app import create_app
from klucznik.instance.keyring import TEST_KDF


def main() -> None:
    app = create_app({"KLUCZNIK_KDF": TEST_KDF, "KSEF_CLIENT_OPTIONS": {"timeout": (2.0, 5.0)}})
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="klucznik")
    print(f"http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
