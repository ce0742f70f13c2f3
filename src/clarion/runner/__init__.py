"""Who runs the pipeline steps when: the embedded runner (in the server process)."""
