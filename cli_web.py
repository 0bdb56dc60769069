"""``klucznik serve``: the portal under waitress."""

from __future__ import annotations

import os

import click


@click.command()
@click.option("--host", default=lambda: os.environ.get("KLUCZNIK_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", type=int, default=lambda: int(os.environ.get("KLUCZNIK_PORT", "8000")),
              show_default="8000")
def serve(host: str, port: int) -> None:
    """Start the portal with waitress (KLUCZNIK_HOST, KLUCZNIK_PORT)."""
    from waitress import serve as waitress_serve

    from app import create_app

    app = create_app()
    click.echo(f"Klucznik: http://{host}:{port}/  (Ctrl+C zatrzymuje / stops)")
    waitress_serve(app, host=host, port=port, threads=8, ident="klucznik")
