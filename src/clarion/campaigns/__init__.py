"""Campaigns: definitions, versions, lifecycle; the management API and campaigns-as-code."""
