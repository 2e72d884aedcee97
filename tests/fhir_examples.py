"""The FHIR door's example transaction (docs/examples/fhir-transaction.json, the one its
page shows), for the tests: what the docs show is what is tested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "fhir-transaction.json"


def bundle(reference: str) -> dict[str, Any]:
    """A transaction: the Patient, the ServiceRequest (``reference`` its identifier), a
    symptom and a vital (SpO2), in this order."""
    body: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    body["entry"][1]["resource"]["identifier"][0]["value"] = reference
    return body
