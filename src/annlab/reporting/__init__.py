"""Figures, the Markdown / HTML report, and comparisons of MLflow runs."""
