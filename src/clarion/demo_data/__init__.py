"""Demo data for ``make run``: the seed's store-pickup example, created through the public API."""
