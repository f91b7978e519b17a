"""File input and output: videos, layers, contact sheets, atomic writes."""
