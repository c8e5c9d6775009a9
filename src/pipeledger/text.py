"""Wording helpers shared by messages, help texts and the CLI: counts and articles.

Every "N thing(s)" in pipeledger goes through :func:`plural`, every "a/an thing" whose noun
is not fixed in the text through :func:`article`, so no message reads "1 steps" or
"a artifact store".
"""

from __future__ import annotations

_IRREGULAR = {"entry": "entries", "index": "indexes", "child": "children", "class": "classes"}


def plural_of(noun: str) -> str:
    """The plural of an English noun as pipeledger's messages use them: ``step`` -> ``steps``,
    ``entry`` -> ``entries``, ``class`` -> ``classes``; a multi-word noun's last word changes
    (``cache entry`` -> ``cache entries``)."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        word = last[:-1] + "ies"
    elif last.endswith(("s", "x", "ch", "sh")):
        word = last + "es"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def agree(count: int, noun: str) -> str:
    """The noun alone in the number ``count`` asks for: ``agree(2, "stack")`` is ``"stacks"``
    (for "stacks a, b" where the count is not printed)."""
    return noun if count == 1 else plural_of(noun)


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and the noun in the number it agrees with: ``plural(1, "step")`` is ``"1 step"``,
    ``plural(3, "cache entry")`` is ``"3 cache entries"``, ``plural(0, "run")`` is ``"0 runs"``.
    ``plural_form`` overrides the computed plural."""
    return f"{count} {noun if count == 1 else plural_form or plural_of(noun)}"


def article(noun: str) -> str:
    """The noun with its indefinite article, by its first letter: ``"an artifact store"``,
    ``"a metadata store"``, ``"an orchestrator"`` (pipeledger's nouns have no silent h or
    "you"-sounding u)."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}" if noun else noun
