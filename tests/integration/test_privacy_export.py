"""`aiguillage privacy export` (issue 34): a patient with two referrals gets both, with
every service's part (identity and history, decisions and their reasons, appointments,
notifications sent) and the accesses to their file; another patient's nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from aiguillage.commands.privacy import gather, render
from shared.settings import Settings
from tests import retention_data as data
from tests.integration.test_retention_purge import NOW, OLD, RECENT

ZEPH = "p-zephirine"


async def _seed(tmp_path: Path) -> Settings:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    dbs = {
        name: await data.migrated(settings.database_url(name), name)  # type: ignore[arg-type]
        for name in ("intake", "regulation", "scheduler", "notifier")
    }
    try:
        for referral, status, at, patient in (
            ("r1", "seen", OLD, ZEPH),
            ("r2", "appointment", RECENT, ZEPH),
            ("r3", "seen", RECENT, "p-someone-else"),
        ):
            await data.seed_intake(dbs["intake"], referral, status, at, patient)
            await data.seed_regulation(dbs["regulation"], referral, "orient", at, patient)
            await data.seed_scheduler(dbs["scheduler"], referral, at, referral == "r1", patient)
            await data.seed_notifier(dbs["notifier"], referral, at, patient)
    finally:
        for db in dbs.values():
            await db.dispose()
    return settings


def _referrals(part: list[dict[str, object]]) -> list[object]:
    return sorted(entry["referral_id"] for entry in part)


async def test_both_referrals_with_every_service_s_part(tmp_path: Path) -> None:
    settings = await _seed(tmp_path)
    document = await gather(settings, nir=data.NIR.replace("6", "6 ", 1))  # spaced as typed
    # r3's identity holds the same NIR in the seed, but another pseudonym: the NIR finds
    # every referral it names, and each one's pseudonym brings the rest.
    assert document is not None
    mine = [r for r in document["intake"]["referrals"] if r["patient_ref"] == ZEPH]
    assert _referrals(mine) == ["r1", "r2"]
    assert {r["identity"]["nir"] for r in mine} == {data.NIR}
    assert {r["identity"]["phone"] for r in mine} == {data.PHONE}
    by_referral = await gather(settings, referral_id="r2")
    assert by_referral is not None
    assert by_referral["patient_refs"] == [ZEPH]
    assert _referrals(by_referral["intake"]["referrals"]) == ["r1", "r2"]
    assert _referrals(by_referral["regulation"]["cases"]) == ["r1", "r2"]
    reasons = [d["reasons"] for c in by_referral["regulation"]["cases"] for d in c["decisions"]]
    assert reasons == [["fièvre", "âge > 65"]] * 2
    assert _referrals(by_referral["scheduler"]["appointments"]) == ["r1", "r2"]
    assert _referrals(by_referral["notifier"]["contacts"]) == ["r1", "r2"]
    assert _referrals(by_referral["notifier"]["notifications"]) == ["r1", "r2"]
    assert "r3" not in json.dumps(by_referral)
    # The first exports were reads of the file: the next one lists them.
    accesses = by_referral["intake"]["referrals"][0]["accesses"]
    assert accesses and accesses[0]["route"] == "aiguillage privacy export"
    page = render(by_referral)
    assert "Zéphirine" in page and "Purgeable" in page
    assert "Rendez-vous donné" in page and "Vu" in page  # the labels' words, not codes
    assert "orienter vers un centre" in page and ">orient<" not in page


async def test_the_command_writes_the_json_and_the_page(tmp_path: Path) -> None:
    await _seed(tmp_path)
    out = tmp_path / "export"
    environment = {
        **os.environ,
        "AIGUILLAGE_DATA_DIR": str(tmp_path),
        "AIGUILLAGE_ENVIRONMENT": "development",
    }
    done = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiguillage", "privacy", "export", "--referral", "r1"),
        *("--out", str(out)),
        env=environment,
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    written, errors = await asyncio.wait_for(done.communicate(), timeout=120)
    assert done.returncode == 0, errors.decode()[-2000:]
    json_path, html_path = (Path(line) for line in written.decode().split())
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert _referrals(document["intake"]["referrals"]) == ["r1", "r2"]
    assert html_path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert NOW  # the seed's clock
