"""Files that are never half-written: atomic writes, checked reads, locks, the resumable chunk stores."""
