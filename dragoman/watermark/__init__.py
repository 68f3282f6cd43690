"""watermark stage."""
