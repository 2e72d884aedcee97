"""The regulation service."""
