"""What the scripts run: their arguments, the grid, the report, the sanity checks."""
