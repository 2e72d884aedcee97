"""Regulation's domain: the protocol as data, and the decision it gives."""
