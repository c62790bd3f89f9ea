"""What a reader sees: tables in Markdown, LaTeX and CSV, and the figures."""
