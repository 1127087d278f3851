"""File formats of the object store: Avro object container files (cold) and Parquet."""
