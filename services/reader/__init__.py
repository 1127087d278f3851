"""fusou.reader.v1.ReaderService."""
