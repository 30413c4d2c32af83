"""Compress to a budget (placeholder in the latency branch; the lead's package file replaces it)."""
