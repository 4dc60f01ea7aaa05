"""`wb study`: grids of training runs (grid.py), run resumably (run.py), one table and chart (report.py)."""
