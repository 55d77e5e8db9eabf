"""Ingestion: sources, parsing, validation, loading and jobs (built by the ingestion issue)."""
