"""French geodata: communes (INSEE code, département, population, location,
postcodes), départements, distances and a spatial index."""

from shared.geo.communes import (
    Commune,
    CommuneResolution,
    Departement,
    commune,
    communes,
    communes_for_postcode,
    communes_in_departement,
    departement,
    departements,
    normalise_name,
    resolve_commune,
)
from shared.geo.distance import haversine_km
from shared.geo.grid import GridIndex

__all__ = [
    "Commune",
    "CommuneResolution",
    "Departement",
    "GridIndex",
    "commune",
    "communes",
    "communes_for_postcode",
    "communes_in_departement",
    "departement",
    "departements",
    "haversine_km",
    "normalise_name",
    "resolve_commune",
]
