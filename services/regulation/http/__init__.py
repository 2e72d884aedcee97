"""Regulation's HTTP API (``routes``) and what its routes reach (``state``)."""

from services.regulation.http.routes import router
from services.regulation.http.state import RegulationApi

__all__ = ["RegulationApi", "router"]
