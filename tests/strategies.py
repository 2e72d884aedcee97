"""Hypothesis strategies: referrals, broken referrals and things that are not referrals."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def valid_referral(reference: str = "ref-1") -> dict[str, Any]:
    return {
        "referrer": {"kind": "gp", "identifier": "10001234567", "reply_to": "prop"},
        "reference": reference,
        "patient": {
            "first_name": "Jeanne",
            "last_name": "Martin",
            "birth_date": "1960-02-01",
            "commune_insee": "35238",
            "phone": "0612345678",
            "sms_consent": True,
        },
        "clinical": {"symptomatic": True, "vitals": {"spo2": 96}},
    }


_PATHS = [
    ("referrer",),
    ("referrer", "kind"),
    ("referrer", "identifier"),
    ("reference",),
    ("patient",),
    ("patient", "birth_date"),
    ("patient", "commune_insee"),
    ("patient", "first_name"),
    ("patient", "email"),
    ("clinical",),
    ("clinical", "symptomatic"),
    ("clinical", "vitals"),
    ("clinical", "onset_date"),
    ("purpose",),
]


@st.composite
def mutated_referrals(draw: st.DrawFn) -> dict[str, Any]:
    """A valid referral with a few fields deleted or replaced by anything at all."""
    data = valid_referral(draw(st.text(min_size=1, max_size=20)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        target: Any = data
        for key in path[:-1]:
            if not isinstance(target, dict) or not isinstance(target.get(key), dict):
                target = None
                break
            target = target[key]
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(json_values)
    return data


referral_payloads = st.one_of(
    st.just(valid_referral()),
    mutated_referrals(),
    json_values,
)


@st.composite
def broker_bodies(draw: st.DrawFn) -> bytes:
    """What may arrive on the submissions queue: envelopes of (broken) referrals,
    broken envelopes, JSON that is no envelope, and bytes that are no JSON."""
    kind = draw(st.sampled_from(["envelope", "broken-envelope", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    envelope: dict[str, Any] = {
        "id": draw(st.uuids()).hex,
        "type": "referral.submitted",
        "version": 1,
        "time": "2020-03-25T09:00:00Z",
        "source": "gp",
        "correlation_id": "c",
        "data": draw(referral_payloads),
    }
    if kind == "broken-envelope":
        key = draw(st.sampled_from(sorted(envelope)))
        envelope[key] = draw(json_values)
    return json.dumps(envelope).encode()
