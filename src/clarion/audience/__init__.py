"""Audience rules: the model, their validation, and their compilation to SQL."""
