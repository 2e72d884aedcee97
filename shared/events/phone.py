"""A patient's phone number: a real one, kept in E.164 (``+33612345678``).

Referrers write numbers as people do: ``06 12 34 56 78``, ``0692 12 34 56`` in La
Réunion, ``+32 470 12 34 56`` for a Belgian mobile. A national number (a leading 0) is
French: the mainland's, or one of the overseas départements and collectivités that
have their own country code (``OVERSEAS_CODES``), which a 0 dials from France too; any
other country's takes its international form. What does not
parse, or is not a number any operator gives, is refused (``phone``, hence the reason
``invalid_phone``); what is kept and sent downstream is the E.164 form, so that one
number is one address whatever its spelling (the notifier's daily quota counts by it).

Refusals never quote the value: their messages travel to the referrer and into logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber

# The column that has always kept it: room for spaces, dots and a "+33 (0)".
PHONE_INPUT_MAX = 32

# The country codes of the overseas départements and collectivités, whose numbers one
# also dials with a 0 from France: La Réunion and Mayotte (+262; +269 is the Comoros,
# a foreign country), Guadeloupe, Saint-Barthélemy and Saint-Martin (+590), Guyane
# (+594), Martinique (+596), Saint-Pierre-et-Miquelon (+508).
OVERSEAS_CODES = (262, 590, 594, 596, 508)


def parse_phone(value: str) -> PhoneNumber | None:
    """The number ``value`` writes, if it is a valid one; None otherwise."""
    # Imported on first use (here and below): only intake and the notifier read phone
    # numbers; the other services import the events without loading the library.
    import phonenumbers

    try:
        number = phonenumbers.parse(value.strip(), "FR")
    except phonenumbers.NumberParseException:
        return None
    if value.strip().startswith(("+", "00")):
        return number if phonenumbers.is_valid_number(number) else None
    # A national number (0...): an overseas line first. Its prefix (0262, 0269, 0590,
    # 0692...) is the territory's alone, but the library's mainland plan takes some of
    # them too (0269 61 23 45 would become a +33 number that rings nowhere). A toll-free
    # or special number (0800...) is the mainland's, where both plans have it.
    kind = phonenumbers.PhoneNumberType
    lines = (kind.FIXED_LINE, kind.MOBILE, kind.FIXED_LINE_OR_MOBILE, kind.VOIP)
    overseas = [
        phonenumbers.PhoneNumber(country_code=code, national_number=number.national_number)
        for code in OVERSEAS_CODES
    ]
    valid = [n for n in overseas if phonenumbers.is_valid_number(n)]
    local = [n for n in valid if phonenumbers.number_type(n) in lines]
    if local:
        return local[0]
    if phonenumbers.is_valid_number(number):
        return number
    return valid[0] if valid else None


def e164(value: str) -> str | None:
    """``value`` in E.164 (``+262692123456``), or None if it is no valid number."""
    import phonenumbers

    number = parse_phone(value)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def takes_sms(value: str) -> bool:
    """A mobile: an SMS reaches it. A landline, a VoIP box number (09 in France), a
    premium or free number does not. Where a country's plan cannot tell a mobile from a
    landline (the United States), the operator can: it is not refused here."""
    import phonenumbers

    number = parse_phone(value)
    if number is None:
        return False
    kind = phonenumbers.number_type(number)
    return kind in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def check_phone(value: str) -> str:
    """The number in E.164; a refusal (``phone``) if it is no valid number."""
    normal = e164(value)
    if normal is None:
        raise PydanticCustomError(
            "phone",
            "Not a valid phone number: a French number of 10 digits, an overseas one "
            "(0262..., 0590...), or another country's in its international form (+...).",
        )
    return normal


Phone = Annotated[str, Field(max_length=PHONE_INPUT_MAX), AfterValidator(check_phone)]
"""A valid phone number, kept in E.164."""


def _blank_is_none(value: object) -> object:
    # An empty field of a practice's form ("phone": "") says "no number", as it always
    # did; it is not a wrong number.
    return None if isinstance(value, str) and not value.strip() else value


OptionalPhone = Annotated[Phone | None, BeforeValidator(_blank_is_none)]
"""A valid phone number in E.164, or none (absent, null or blank)."""
