"""Liquid templates: one configured environment, parse-time checks, rendering."""
