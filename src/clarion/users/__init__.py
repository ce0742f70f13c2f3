"""Users and devices: the Clix users API and SDK ingestion."""
