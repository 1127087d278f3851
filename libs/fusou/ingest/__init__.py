"""The Ingest use case: validate, fit the schema, encode, and write through group commit."""
