"""Numbers only, no files and no formatting: intervals, tests, the tables' statistics, map similarity."""
