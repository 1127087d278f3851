"""The Reader: time-range reads that merge hot rows and cold blocks without duplicates."""
