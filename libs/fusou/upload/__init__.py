"""Raw Parquet bundles: UploadRaw."""
