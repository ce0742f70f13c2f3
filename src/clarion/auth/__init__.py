"""Projects' API keys: generation, hashing, verification and the request principal."""
