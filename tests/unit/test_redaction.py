"""Personal data never reaches a log line."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.logging import REDACTED, configure_logging, scrub_text

SECRETS = ["Dupont-Lajoie", "Éloïse", "185057800608491", "06 12 34 56 78", "eloise@exemple.fr"]


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    configure_logging("test", "DEBUG", json=True)
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(_sensitive=("Dupont-Lajoie", "Éloïse"))
    log.info(
        "patient Éloïse DUPONT-LAJOIE, NIR 1 85 05 78 006 084 91, tel +33 6 12 34 56 78",
        first_name="Éloïse",
        email="eloise@exemple.fr",
        nir="185057800608491",
        detail={"phone": "0612345678", "note": "écrire à eloise@exemple.fr"},
        items=["06.12.34.56.78"],
    )
    try:
        raise ValueError("bad value 185057800608491 for Dupont-Lajoie")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiguillage.stdlib").warning("stdlib: mail eloise@exemple.fr tel 0612345678")
    structlog.contextvars.clear_contextvars()
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_no_personal_data_in_any_line(lines: list[dict[str, object]]) -> None:
    assert len(lines) == 3
    text = json.dumps(lines, ensure_ascii=False).lower()
    for secret in SECRETS:
        assert secret.lower() not in text, secret
    for fragment in ["0612345678", "06.12.34.56.78", "+33 6 12 34 56 78", "1 85 05 78 006 084 91"]:
        assert fragment not in text
    assert REDACTED in text


def test_redaction_keeps_what_is_not_personal() -> None:
    text = "referral 3f2b, centre rennes-chu, 12 patients, 2020-03-25 09:20, département 35"
    assert scrub_text(text) == text
