"""Pure-Python twin of ``_speedups`` (filled by the hashing work)."""
