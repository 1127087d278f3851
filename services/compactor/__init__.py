"""CompactorService."""
