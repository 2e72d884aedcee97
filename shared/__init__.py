"""Contracts and infrastructure shared by the Aiguillage services.

Nothing here knows about any one service: services depend on ``shared``,
never on each other.
"""
