"""How deep a JSON text nests, judged on its raw bytes before any parser sees it.

Python's ``json`` recurses once per level: ``[`` × 5,000 raised ``RecursionError``, which
escaped intake's HTTP door as a 500 with a traceback (issue 28). Every HTTP body
(``shared.http.BodyLimit``) and every message a consumer takes (``shared.consumer``) is
judged here first; our events nest a handful of levels, 32 leaves room.
"""

from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, cycle

MAX_DEPTH = 32

# "{" and "}" counted as "[" and "]"; every byte that is neither deleted.
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_RUNS = re.compile(rb"\[+|\]+")


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``body`` opens arrays and objects more than ``limit`` levels deep, what
    its strings hold aside. In C-level passes over the bytes, no Python step per byte: a
    bound on every message must not cost more than parsing it (64 KiB made to be slow:
    1 to 8 ms, where json.loads takes 6 to 20)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # it cannot nest deeper than it opens: every ordinary message
    text = _utf8(body)
    # Escapes first (each "\\", then each '\"'), so that no quote left is inside a
    # string: then every other piece between two quotes is a string's content.
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[0::2])
    brackets = outside.translate(_AS_BRACKETS, _NOT_BRACKETS)
    unclosed = brackets.count(b"[") - brackets.count(b"]")
    if unclosed > limit:
        return True
    # Closed at the end, as a parser reads on until it fails. Then each pass that takes
    # out every innermost "[]" lowers the deepest level by exactly one: passes while
    # they shrink the text fast, then the rest's deepest level, counted run by run.
    brackets += b"]" * max(unclosed, 0)
    passes = 0
    while passes < limit and brackets:
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) > len(brackets) * 3 // 4:
            break
        brackets, passes = reduced, passes + 1
    return passes + _deepest(brackets) > limit


def _deepest(brackets: bytes) -> int:
    """The deepest level of a text of "[" and "]": runs alternate, so their lengths,
    signed in turn, add up to each run's level (a leading "]" is a parser's error)."""
    runs = _RUNS.findall(brackets.lstrip(b"]"))
    levels = accumulate(map(operator.mul, map(len, runs), cycle((1, -1))))
    return max(levels, default=0)


def _utf8(body: bytes) -> bytes:
    """The body as UTF-8, in which a byte below 0x80 is always that ASCII character.
    ``json.loads`` also reads UTF-16 and UTF-32, whose code units may hold a quote's or
    a bracket's byte: such a body is judged as the text the parser will read."""
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        return body
    return body.decode(encoding, errors="replace").encode("utf-8")
