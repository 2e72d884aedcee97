"""Aiguillage's entry points: the ``aiguillage`` command and the demo."""
