"""The sealed instance: one SQLCipher database, its keyring, its snapshots and its migrations."""
