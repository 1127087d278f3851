"""fusou.ingest.v1.IngestService."""
