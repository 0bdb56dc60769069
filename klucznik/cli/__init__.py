"""The ``klucznik`` console commands (see :mod:`klucznik.cli.main`)."""
