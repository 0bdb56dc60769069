"""The ``klucznik`` console script: the domain's commands plus ``serve`` and ``sandbox``.

``serve`` and ``sandbox`` are imported only when they run, so the domain commands never load Flask
and the portal never imports the sandbox (it is only started as a command).
"""

from __future__ import annotations

import importlib

import click

from klucznik.cli.main import main as _domain

_LAZY = {
    "serve": ("cli_web", "serve"),
    "sandbox": ("sandbox.cli", "sandbox"),
}


class _Main(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY:
            module, attr = _LAZY[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


main = _Main(name="klucznik", help=_domain.help, commands=_domain.commands,
             context_settings={"help_option_names": ["-h", "--help"]})

if __name__ == "__main__":
    main(prog_name="klucznik")
