"""Keeping clients connected: what expires when, whether stored credentials still work, whether KSeF is up.

``expiry`` judges validity at an explicit moment; ``results`` stores live-check outcomes (in batches);
``overview`` builds the status page's table, a client's timeline and its KSeF errors; ``checks`` runs the
live checks against KSeF; ``jobs`` runs "check all" in background threads; ``availability`` combines
Latarnia with the portal's own probe. See docs/ARCHITECTURE.md (floor 5, beside ``authorize``).
"""
