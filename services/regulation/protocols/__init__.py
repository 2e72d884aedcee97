"""Regulation protocol versions, as data (one JSON document per version)."""
