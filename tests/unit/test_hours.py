"""Opening hours as people write them (aiguillage/hours.py): French first, English kept;
a wrong text refused with what was expected, in French, and by the command in one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from aiguillage.hours import HoursError, parse_hours
from shared.http import free_port
from shared.settings import get_settings


def hours(text: str) -> list[tuple[int, str, str]]:
    return [(p.weekday, p.opens, p.closes) for p in parse_hours(text)]


def weekdays(days: range | list[int], opens: str, closes: str) -> list[tuple[int, str, str]]:
    return [(day, opens, closes) for day in days]


def test_the_forms_of_issue_27() -> None:
    assert hours("lun-ven 08:00-20:00") == weekdays(range(5), "08:00", "20:00")
    assert hours("sam 09:00-13:00") == [(5, "09:00", "13:00")]
    assert hours("lun,mer,ven 09:00-12:00 14:00-18:00") == [
        (day, opens, closes)
        for day in (0, 2, 4)
        for opens, closes in (("09:00", "12:00"), ("14:00", "18:00"))
    ]
    assert hours("lun-ven 08:00-20:00 ; sam 09:00-13:00") == [
        *weekdays(range(5), "08:00", "20:00"),
        (5, "09:00", "13:00"),
    ]


@pytest.mark.parametrize(
    "text", ["tous les jours 08:00-20:00", "tlj 08:00-20:00", "TLJ 8h-20h", "all 08:00-20:00"]
)
def test_every_day(text: str) -> None:
    assert hours(text) == weekdays(range(7), "08:00", "20:00")


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("mon-fri 09:00-19:00; sat 09:00-12:00", "lun-ven 09:00-19:00 ; sam 09:00-12:00"),
        ("Lundi - Vendredi : 9h - 19h", "lun-ven 09:00-19:00"),
        ("lun–ven 9h-12h30, 14h-19h", "lun-ven 09:00-12:30 14:00-19:00"),
        ("lun et mer 9h-12h et 14h-18h", "lun,mer 09:00-12:00 14:00-18:00"),
        ("mar., jeu. 08:00-12:00", "mar,jeu 08:00-12:00"),
        ("ven-lun 10:00-12:00", "ven,sam,dim,lun 10:00-12:00"),
        ("daily 00:00-24:00", "7j/7 00:00-24:00"),
    ],
)
def test_the_ways_people_write_them(text: str, same_as: str) -> None:
    assert parse_hours(text) == parse_hours(same_as)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "lun-xyz 08:00-20:00",
            "jour inconnu « xyz » : attendu lun, mar, mer, jeu, ven, sam, dim (ou lun-ven)",
        ),
        ("08:00-20:00", "jours manquants avant « 08:00-20:00 » : attendu par exemple"),
        ("lun-ven", "horaires manquants après « lun-ven » : attendu une plage comme 08:00-20:00"),
        ("lun-ven 08:00", "plage horaire invalide « 08:00 » : attendu HH:MM-HH:MM"),
        ("lun 25:00-26:00", "heure invalide « 25:00 » dans « 25:00-26:00 » : attendu HH:MM"),
        ("lun 08:61-09:00", "heure invalide « 08:61 »"),
        ("lun 20:00-08:00", "plage « 20:00-08:00 » : la fermeture doit suivre l'ouverture"),
        ("lun 09:00-12:00 11:00-14:00", "plages qui se chevauchent le lundi : 09:00-12:00 et"),
        ("lun-ven 9h-12h ; lun 10h-11h", "plages qui se chevauchent le lundi"),
        ("", "aucun horaire : attendu par exemple « lun-ven 08:00-20:00 ; sam 09:00-13:00 »"),
        (" ; ", "aucun horaire dans « ; » : attendu par exemple"),
    ],
)
def test_a_wrong_text_says_what_was_expected(text: str, says: str) -> None:
    with pytest.raises(HoursError) as raised:
        parse_hours(text)
    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)  # the console's form catches it so


def _activate(hours_text: str, broker: str) -> tuple[int, list[str]]:
    get_settings.cache_clear()
    try:
        args = ["ars", "activate", "--id", "c1", "--name", "C", "--commune", "35238"]
        result = CliRunner().invoke(
            cli, [*args, "--hours", hours_text], env={"AIGUILLAGE_BROKER_URL": broker}
        )
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stderr.splitlines()


def test_the_command_says_a_wrong_text_in_one_line() -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    code, lines = _activate("lun-xyz 08:00-20:00", closed)
    assert (code, lines) == (
        2,
        [
            "horaires invalides : jour inconnu « xyz » : attendu lun, mar, mer, jeu, ven, "
            "sam, dim (ou lun-ven)"
        ],
    )
    # The French form is read: the command goes on, to a broker that is not there.
    code, lines = _activate("lun-ven 08:00-20:00 ; sam 09:00-13:00", closed)
    assert code == 2 and lines[0].startswith("RabbitMQ ne répond pas"), lines
