"""The nesting bound, judged on raw bytes before any parser (shared/nesting.py): exact on
JSON, whatever its strings hold, and cheaper than parsing on inputs made to be slow."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.nesting import MAX_DEPTH, too_deep

# Strings that would fool a count of brackets: brackets, quotes and backslashes inside.
TRICKY = st.sampled_from(["[[[[{{{{", 'a"b', "\\", '\\"[', "]]}}", "x\\\\", "é[ü{"])
DOCUMENTS = st.recursive(
    st.none() | st.integers() | TRICKY | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=60,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nested(levels: int, inside: Any = 1) -> Any:
    for level in range(levels):
        inside = [inside] if level % 2 else {"k": inside}
    return inside


@given(DOCUMENTS, st.integers(0, 40), st.booleans())
def test_exact_on_any_document(document: Any, wrapped: int, ascii_only: bool) -> None:
    """Brackets in strings, escaped quotes and backslashes: judged as the parser reads."""
    value = nested(wrapped, document)
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert too_deep(body) == (depth(value) > MAX_DEPTH)


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_at_the_bound(levels: int) -> None:
    body = json.dumps(nested(levels)).encode()
    assert too_deep(body) == (levels > MAX_DEPTH)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,  # the attack: never closed
        b"[" * 40 + b"]" * 20,  # closed short of its depth
        b"[" * 5000 + b"]" * 4990,
        b'{"a":' * 33 + b"1" + b"}" * 33,
        json.dumps(nested(40)).encode("utf-16"),  # json.loads reads UTF-16 too
        json.dumps(nested(40)).encode("utf-32"),
    ],
)
def test_too_deep(body: bytes) -> None:
    assert too_deep(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[" * 20,
        b"[1]" * 3000,
        json.dumps({"s": "[" * 5000}).encode(),
        json.dumps(nested(20)).encode("utf-16"),
    ],
)
def test_not_too_deep(body: bytes) -> None:
    assert not too_deep(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 32_000 + b"]" * 32_000,
        b"[]" * 32_500,
        (b"[" * 32 + b"]" * 32) * 1000,  # as deep as allowed, over and over
        (b"[" * 5 + b"]" * 5) * 6500,
        b'"' * 32_000 + b"[" * 32_000,
        b'{"a":1,"b":[1,2,{"c":[]}]}' * 2400,
    ],
)
def test_64_kib_made_to_be_slow_costs_milliseconds(body: bytes) -> None:
    """No Python step per byte: a 64 KiB body costs a few ms at most (the bound is
    loose, for a loaded machine; it is 1 to 5 ms here, json.loads 6 to 20 ms)."""
    started = time.process_time()
    for _ in range(5):
        too_deep(body)
    assert (time.process_time() - started) / 5 < 0.05
