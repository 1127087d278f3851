"""Compaction: raw fragments, cold Avro and small Parquet files into optimized Parquet."""
