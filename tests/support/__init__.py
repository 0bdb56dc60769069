"""Plain helpers and constants the tests import directly: no fixtures here.

Fixtures live in ``tests/conftest.py`` (the instance, the app, the web clients) and in ``tests/fixtures/``
(signing identities, the KSeF sandbox), which the conftest registers as plugins.
"""
