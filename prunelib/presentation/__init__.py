"""Presenting a run: figures, the report, and analysis across runs and layers."""
