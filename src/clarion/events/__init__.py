"""SDK events: stored per user; SESSION_START keeps last_session_at for audience rules."""
