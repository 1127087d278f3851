"""The catalog: datasets, tables, schema versions, objects and their block index."""
