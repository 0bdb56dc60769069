"""Table functions: each runs inside the caller's ``store.write()`` (or reads a ``store.connect()``) and takes ``at``."""
