"""iOS Live Activities: push-to-start tokens and start requests (stored; not yet delivered)."""
