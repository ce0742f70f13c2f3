"""The Message Log: one row per recipient and device, with its outcome and reason."""
