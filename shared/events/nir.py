"""The NIR (numéro d'inscription au répertoire, the French social security number):
its shape and its control key, checked where a referral comes in.

A wrong NIR would become a wrong pseudonym (services.intake.domain.submission.pseudonym): two
patients merged, or one patient split in two. Refusals never quote the value: their
messages travel to the referrer and into the logs.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# As printed on a carte Vitale, "2 85 05 78 006 084 41": 15 characters and 6 spaces,
# the length of the column that has always kept it.
NIR_INPUT_MAX = 21

# Sex (1, 2; 3, 4, 7, 8 for special and temporary registrations), year, month (01-12;
# INSEE also gives 20-42 and 50-99 when the month is unknown), département (2A, 2B for
# Corsica), commune, order number, key. ASCII: \d alone would take any Unicode digit.
_SHAPE = re.compile(
    r"[123478]\d{2}(0[1-9]|1[0-2]|[23]\d|4[0-2]|[5-9]\d)(\d{2}|2[AB])\d{3}\d{3}\d{2}",
    re.ASCII,
)
# For the key, Corsica's départements count as numbers again.
_CORSICA = {"2A": "19", "2B": "18"}


def nir_key(first13: str) -> int:
    """The control key of a NIR's first 13 characters: 97 - (N mod 97)."""
    departement = first13[5:7]
    number = first13[:5] + _CORSICA.get(departement, departement) + first13[7:]
    return 97 - int(number) % 97


def check_nir(value: str) -> str:
    """The NIR without its spaces; a refusal (``nir_format``, ``nir_key``) otherwise."""
    nir = value.replace(" ", "").upper()
    if not _SHAPE.fullmatch(nir):
        raise PydanticCustomError(
            "nir_format",
            "The NIR must be 15 characters: sex, year and month of birth, département "
            "(2A or 2B for Corsica), commune, order number and a 2-digit key; spaces "
            "are allowed.",
        )
    if int(nir[13:]) != nir_key(nir[:13]):
        raise PydanticCustomError(
            "nir_key", "The NIR's control key does not match its first 13 characters."
        )
    return nir


Nir = Annotated[str, Field(max_length=NIR_INPUT_MAX), AfterValidator(check_nir)]
"""A checked NIR, stored without spaces."""
