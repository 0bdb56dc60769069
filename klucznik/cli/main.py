"""The ``klucznik`` console commands of the domain: every one a thin adapter over one domain function.

The console script itself (``cli.py`` at the top of the project) adds ``serve`` and ``sandbox``, which load
the web layer and the sandbox only when they run.
"""

from __future__ import annotations

import click

from klucznik.cli.admin import backup
from klucznik.cli.admin import check
from klucznik.cli.admin import unseal_key
from klucznik.cli.certs import certs_group
from klucznik.cli.status import check_clients
from klucznik.cli.status import check_expiry
from klucznik.cli.status import remind
from klucznik.cli.xml import xml


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Klucznik: KSeF credentials for an accounting office's clients."""


for command in (backup, check, unseal_key, certs_group, xml, check_expiry, check_clients, remind):
    main.add_command(command)
