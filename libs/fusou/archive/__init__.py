"""The Archiver: hot rows from the buffer to cold Avro files with a block index, exactly once."""
