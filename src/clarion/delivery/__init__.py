"""The delivery pipeline: resolve recipients, render, hand over to providers."""
