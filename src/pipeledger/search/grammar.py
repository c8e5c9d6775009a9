"""The filter grammar: a tokenizer and a hand-written recursive-descent parser.

::

    filter     := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | lineage | comparison
    lineage    := ("upstream_of" | "downstream_of") "(" STRING ["," INTEGER] ")"
    comparison := name ( OP value
                       | ["not"] "in" "(" value ("," value)* ")"
                       | ["not"] ("like" | "ilike") STRING
                       | "is" ["not"] "null" )
    OP         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      := STRING | ["-"] NUMBER | ["-"] DURATION | "true" | "false"
                | "now" "(" ")" [("+" | "-") DURATION]
    name       := part ("." part)*         part := IDENT | `back-quoted`
    STRING     := '...' | "..."            (a quote doubled stands for itself)
    DURATION   := NUMBER ("s" | "m" | "h" | "d" | "w")

Keywords are case-insensitive. Hand-written rather than generated (``lark`` was the
alternative): no dependency, a caret at the exact column of every error with the words
"expected ... found ...", and limits checked while parsing (length, nesting, number of
conditions), so hostile input never reaches Python's recursion limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeledger.exceptions import QueryError
from pipeledger.search.ast import And, Compare, Lineage, Literal, Name, Node, Not, Or, ValueType
from pipeledger.text import plural

MAX_FILTER_CHARS = 10_000
"""Characters in a filter; a longer one is refused."""
MAX_DEPTH = 64
"""Nesting of parentheses and ``not``."""
MAX_CONDITIONS = 200
"""Comparisons and lineage calls in one filter (each becomes a condition of one SQL statement)."""
MAX_VALUES = 1_000
"""Literals in one filter (``in`` lists included): each is a bound parameter."""

KEYWORDS = frozenset(
    {"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false", "now", "upstream_of", "downstream_of"}
)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>[smhdw](?![A-Za-z0-9_]))?
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.+\-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "string" | "number" | "duration" | "ident" | "quoted" | "op" | "punct" | "end"
    text: str  # the value (strings unquoted, identifiers as written)
    pos: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the filter"
        if self.kind == "string":
            return f"the string {_short(self.text)!r}"
        return f"{self.text!r}"

    def keyword(self) -> str | None:
        return self.text.lower() if self.kind == "ident" and self.text.lower() in KEYWORDS else None


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token.

    Raises:
        QueryError: an unterminated string or an unexpected character.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            j, parts = i + 1, []
            while True:
                k = text.find(c, j)
                if k < 0:
                    what = "back-quoted name" if c == "`" else "string"
                    raise QueryError(f"unterminated {what}: expected a closing {c}", text, i)
                parts.append(text[j:k])
                if k + 1 < n and text[k + 1] == c:
                    parts.append(c)
                    j = k + 2
                    continue
                break
            tokens.append(Token("quoted" if c == "`" else "string", "".join(parts), i))
            i = k + 1
            continue
        m = _TOKEN.match(text, i)
        if m is None:
            raise QueryError(
                f"unexpected character {c!r}: expected a name, a value, an operator or a parenthesis", text, i
            )
        if m.lastgroup != "space":
            if m.group("number") is not None:
                kind = "duration" if m.group("unit") else "number"
                tokens.append(Token(kind, m.group(0), i))
            else:
                tokens.append(Token(m.lastgroup or "punct", m.group(0), i))
        i = m.end()
    tokens.append(Token("end", "", n))
    return tokens


def duration_seconds(token: Token) -> float:
    """Seconds in a duration token such as ``7d`` or ``1.5h``."""
    return float(token.text[:-1]) * UNITS[token.text[-1]]


class Parser:
    """Parses one filter; see the module docstring for the grammar."""

    def __init__(self, text: str, *, now: datetime) -> None:
        if len(text) > MAX_FILTER_CHARS:
            raise QueryError(
                f"the filter is {plural(len(text), 'character')} long; the limit is {MAX_FILTER_CHARS}: "
                "split the search or use 'in (...)'",
                text,
                MAX_FILTER_CHARS,
            )
        for i, c in enumerate(text):
            if c == "\x00" or "\ud800" <= c <= "\udfff":
                raise QueryError("the filter contains a NUL character or an unpaired surrogate", text, i)
        self.text = text
        self.now = now
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.conditions = 0
        self.values = 0

    # ----------------------------------------------------------------- helpers

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def error(self, expected: str, token: Token | None = None) -> QueryError:
        found = token or self.token
        return QueryError(f"expected {expected}, found {found.describe()}", self.text, found.pos)

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.keyword() in words

    def at_punct(self, text: str) -> bool:
        return self.token.kind in ("punct", "op") and self.token.text == text

    def expect_punct(self, text: str, expected: str | None = None) -> Token:
        if not self.at_punct(text):
            raise self.error(expected or repr(text))
        return self.advance()

    def deeper(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(
                f"the filter nests more than {MAX_DEPTH} levels of parentheses or 'not'", self.text, token.pos
            )

    def counted(self, pos: int) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise QueryError(
                f"the filter has more than {MAX_CONDITIONS} conditions: use 'in (...)' or split the search",
                self.text,
                pos,
            )

    # ------------------------------------------------------------------- rules

    def parse(self) -> Node | None:
        """The whole filter; None for an empty one."""
        if self.token.kind == "end":
            return None
        node = self.or_expr()
        if self.token.kind != "end":
            raise self.error("'and', 'or' or the end of the filter")
        return node

    def or_expr(self) -> Node:
        first = self.and_expr()
        items = [first]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return first if len(items) == 1 else Or(tuple(items), _pos(first))

    def and_expr(self) -> Node:
        first = self.not_expr()
        items = [first]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.not_expr())
        return first if len(items) == 1 else And(tuple(items), _pos(first))

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            token = self.advance()
            self.deeper(token)
            item = self.not_expr()
            self.depth -= 1
            return Not(item, token.pos)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if self.at_punct("("):
            self.advance()
            self.deeper(token)
            node = self.or_expr()
            self.expect_punct(")", "')' or 'and'/'or'")
            self.depth -= 1
            return node
        if token.keyword() in ("upstream_of", "downstream_of"):
            return self.lineage()
        if token.kind in ("ident", "quoted") and token.keyword() is None:
            return self.comparison()
        raise self.error("a condition (a name such as status or params.lr, 'not', '(' or upstream_of(...))")

    def lineage(self) -> Lineage:
        token = self.advance()
        self.counted(token.pos)
        direction = "upstream" if token.text.lower() == "upstream_of" else "downstream"
        self.expect_punct("(", f"'(' after {token.text}")
        if self.token.kind != "string":
            raise self.error("an artifact id in quotes")
        artifact_id = self.advance().text
        self.values += 1
        depth: int | None = None
        if self.at_punct(","):
            self.advance()
            if self.token.kind != "number" or not self.token.text.isdigit():
                raise self.error("a depth: a whole number of steps")
            depth = int(self.advance().text)
            if depth > 1000:
                raise QueryError("a lineage depth is at most 1000 steps", self.text, self.tokens[self.i - 1].pos)
        self.expect_punct(")", "')' or ', depth'")
        return Lineage(direction, artifact_id, depth, token.pos)

    def name(self) -> Name:
        start = self.token.pos
        parts = [self.advance().text]
        while self.at_punct("."):
            self.advance()
            if self.token.kind not in ("ident", "quoted"):
                raise self.error("a name after '.'")
            parts.append(self.advance().text)
        return Name(tuple(parts), start)

    def comparison(self) -> Compare:
        name = self.name()
        self.counted(name.pos)
        token = self.token
        if token.kind == "op":
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            if self.at_keyword("null"):
                raise self.error(f"a value (write 'is null' or 'is not null' instead of '{op} null')")
            return Compare(name, op, self.value(), name.pos)
        negated = False
        if self.at_keyword("not"):
            self.advance()
            negated = True
            if not self.at_keyword("in", "like", "ilike"):
                raise self.error("'in', 'like' or 'ilike' after 'not'")
        word = self.token.keyword()
        if word == "in":
            self.advance()
            self.expect_punct("(", "'(' after 'in'")
            values = [self.value()]
            while self.at_punct(","):
                self.advance()
                values.append(self.value())
            self.expect_punct(")", "',' or ')'")
            return Compare(name, "not in" if negated else "in", tuple(values), name.pos)
        if word in ("like", "ilike"):
            self.advance()
            if self.token.kind != "string":
                raise self.error(f"a pattern in quotes after '{word}'")
            pattern = self.advance()
            self.values += 1
            check_pattern(pattern.text, self.text, pattern.pos)
            op = f"not {word}" if negated else word
            return Compare(name, op, Literal(pattern.text, ValueType.TEXT, pattern.pos), name.pos)
        if word == "is":
            self.advance()
            op = "is null"
            if self.at_keyword("not"):
                self.advance()
                op = "is not null"
            if not self.at_keyword("null"):
                raise self.error("'null'")
            self.advance()
            return Compare(name, op, None, name.pos)
        raise self.error(f"an operator after {name.text!r} (= != < <= > >= in, not in, like, ilike, is null)")

    def value(self) -> Literal:
        self.values += 1
        if self.values > MAX_VALUES:
            raise QueryError(f"the filter has more than {MAX_VALUES} values", self.text, self.token.pos)
        token = self.token
        if token.kind == "string":
            self.advance()
            return Literal(token.text, ValueType.TEXT, token.pos)
        sign = 1
        if self.at_punct("-"):
            self.advance()
            sign = -1
            if self.token.kind not in ("number", "duration"):
                raise self.error("a number after '-'")
        token = self.token
        if token.kind == "number":
            self.advance()
            number: int | float = int(token.text) if token.text.isdigit() else float(token.text)
            if isinstance(number, float) and not abs(number) < float("inf"):
                raise QueryError("the number is too large", self.text, token.pos)
            if isinstance(number, int) and number.bit_length() > 63:
                raise QueryError("the number is too large (integers are at most 2**63 - 1)", self.text, token.pos)
            return Literal(sign * number, ValueType.NUMBER, token.pos)
        if token.kind == "duration":
            self.advance()
            return Literal(sign * duration_seconds(token), ValueType.DURATION, token.pos)
        word = token.keyword()
        if word in ("true", "false"):
            self.advance()
            return Literal(word == "true", ValueType.BOOLEAN, token.pos)
        if word == "now":
            self.advance()
            self.expect_punct("(", "'(' after now")
            self.expect_punct(")", "')': now() takes nothing")
            moment = self.now
            if self.at_punct("-") or self.at_punct("+"):
                sign_token = self.advance()
                if self.token.kind != "duration":
                    raise self.error(f"a duration after '{sign_token.text}' (such as 7d, 12h, 30m, 90s)")
                seconds = duration_seconds(self.advance())
                try:
                    delta = timedelta(seconds=seconds)
                    moment = moment - delta if sign_token.text == "-" else moment + delta
                except OverflowError:
                    raise QueryError("the duration is too large", self.text, sign_token.pos) from None
            return Literal(moment, ValueType.TIME, token.pos)
        raise self.error("a value: 'text', a number, true, false, a duration (7d) or now()")


def check_pattern(pattern: str, text: str, pos: int) -> None:
    """Refuse a ``like`` pattern whose backslash escapes nothing (``\\`` escapes ``%``, ``_``, ``\\``)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in "%_\\":
                raise QueryError(
                    "in a like pattern a backslash escapes %, _ or a backslash: write \\\\ for a backslash", text, pos
                )
            i += 2
        else:
            i += 1


def _pos(node: Node) -> int:
    return node.pos
