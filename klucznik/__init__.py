"""Klucznik: the domain package. It never imports Flask (ruff TID251 enforces it)."""

from __future__ import annotations

__version__ = "0.1.0"
