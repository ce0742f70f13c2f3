"""Clarion: self-hosted API-triggered campaigns speaking the Clix wire API."""

__version__ = "0.1.0"
