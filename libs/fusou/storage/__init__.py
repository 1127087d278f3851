"""The storage kernel: the mechanisms every run that moves data between the catalog and the
object store shares (advisory locks, the object-key layout, request replay, the sweeps)."""
