"""The notifier's HTTP API: the centres' (``centres``)."""
