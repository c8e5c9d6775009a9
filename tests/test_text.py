"""Wording: counts agree with their nouns, articles with the next word, everywhere in messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeledger.text import article, plural

SRC = Path(__file__).resolve().parent.parent / "src" / "pipeledger"


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [
        (1, "step", "1 step"),
        (0, "step", "0 steps"),
        (2, "step", "2 steps"),
        (1, "cache entry", "1 cache entry"),
        (3, "cache entry", "3 cache entries"),
        (2, "key", "2 keys"),
        (2, "orphaned path", "2 orphaned paths"),
        (2, "class", "2 classes"),
    ],
)
def test_plural(count: int, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("artifact store", "an artifact store"),
        ("metadata store", "a metadata store"),
        ("orchestrator", "an orchestrator"),
    ],
)
def test_article(noun: str, expected: str) -> None:
    assert article(noun) == expected


# "{len(x)} steps", "{count} artifact(s)", "a {type_.human}": a count or a noun that varies, worded by hand.
COUNT = r"\{(?:len\([^{}]*\)|[\w.]*(?:count|total|checked|failures|removed|deleted)|[\w.]+\['\w+'\])\}"
HAND_WORDED = [
    re.compile(COUNT + r" (?:[a-z]+ )?[a-z]+(?:s\b|\(s\))"),  # "{len(steps)} steps", "{count} artifact(s)"
    re.compile(r"\b[a-z]+\(s\) \{"),  # "stack(s) {names}"
    re.compile(r"\ba \{[^}]*(?:human|title|__name__)[^}]*\}"),  # "a {type_.human}"
]


def test_no_count_or_article_is_worded_by_hand() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "text.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(p.search(line) for p in HAND_WORDED):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []
