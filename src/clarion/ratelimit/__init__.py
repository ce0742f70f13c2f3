"""Per-project request rate limits and the failed-authentication limit per source address."""
