"""The read-only web dashboard: where each table's rows are, how they compress, what waits for
compaction, the recent Archive and Compact runs, and this process's rates."""
