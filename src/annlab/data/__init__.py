"""Data sources (one module per kind), and the split-and-scale step."""
