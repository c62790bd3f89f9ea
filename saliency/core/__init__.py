"""One attribution method per file; shared mechanics in common.py."""
