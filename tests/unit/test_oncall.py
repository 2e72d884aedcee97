"""The ARS's on-call contacts as the settings declare them, and when a beginning is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.domain.oncall import OnCall, parse_contacts, tell_beginning

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_contacts_per_departement_and_never_in_a_repr() -> None:
    contacts = parse_contacts('{"35": [{"email": "a@ars.example", "phone": "+33611223344"}]}')
    assert contacts == {"35": (OnCall("a@ars.example", "+33611223344"),)}
    assert "ars.example" not in repr(contacts) and "3361" not in repr(contacts)
    assert parse_contacts(None) == {} and parse_contacts("  ") == {}


@pytest.mark.parametrize("text", ["[1]", '{"35": "a@b"}', "{not json", '{"35": [1]}'])
def test_a_malformed_declaration_is_refused_naming_no_contact(text: str) -> None:
    with pytest.raises(ValueError, match="on-call contacts") as refused:
        parse_contacts(text)
    assert "a@b" not in str(refused.value)


def test_one_beginning_an_hour() -> None:
    assert tell_beginning(None, NOW)
    assert not tell_beginning(NOW - timedelta(minutes=59), NOW)
    assert tell_beginning(NOW - timedelta(hours=1), NOW)
