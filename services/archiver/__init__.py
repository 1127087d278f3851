"""fusou.archiver.v1.ArchiverService."""
