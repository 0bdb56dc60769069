"""The portal for the browser tests: ``python -m tests.browser.serve`` serves ``KLUCZNIK_INSTANCE``.

Like ``klucznik serve`` (``create_app()`` under waitress), with two differences the tests need: the
certificate checks use the pinned time ``tests.support.certificates.AT`` instead of now, and the key
derivation is the cheap ``TEST_KDF`` the instance was set up with. Waitress binds a free port itself
and the first line on stdout is the portal's address, so there is no race for a port.
"""

from __future__ import annotations

from waitress import create_server

from app import create_app
from klucznik.instance.keyring import TEST_KDF
from tests.support.certificates import AT


def main() -> None:
    app = create_app({"KLUCZNIK_KDF": TEST_KDF, "KLUCZNIK_CLOCK": lambda: AT})
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="klucznik")
    print(f"http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
