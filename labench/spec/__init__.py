"""What an output is: its identity, the file names and results.csv rows it gives, the run asking for it."""
