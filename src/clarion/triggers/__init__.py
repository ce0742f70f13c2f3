"""The Clix trigger endpoint, trigger status and the per-trigger message log."""
