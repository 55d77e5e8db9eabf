"""Benchmarks for the quality bars in DESIGN.md: ``python -m bench ingest --rows N --json``."""
