"""Provider credentials, per project: encrypted at rest, never logged or returned."""
