"""The portal for the status page's browser test: like ``tests.browser.serve`` but on the real clock (the sandbox's
certificates are valid now) and with KSeF's polling not slowed down."""

from __future__ import annotations

from waitress import create_server

from app import create_app
from klucznik.instance.keyring import TEST_KDF


def main() -> None:
    app = create_app({"KLUCZNIK_KDF": TEST_KDF, "KLUCZNIK_POLL_INTERVAL": 0.2})
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="klucznik")
    print(f"http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
