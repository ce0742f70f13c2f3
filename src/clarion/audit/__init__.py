"""The audit log: who created or revoked keys, changed campaigns or limits, and when."""
