"""Reports: plots of data and results (matplotlib, Agg only)."""
