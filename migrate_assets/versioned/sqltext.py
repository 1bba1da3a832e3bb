"""A small lexical scanner for migration SQL: statement boundaries, comments, transaction control.

Only what the runner needs and nothing more: splitting a `no-transaction` file into statements (each must run
alone, outside any implicit transaction block), mapping an error position Postgres reports to a statement
number and line, and spotting top-level BEGIN/COMMIT/ROLLBACK that would break the one-transaction-per-migration
guarantee. It understands quotes, `E''` escapes, quoted identifiers, nested block comments, dollar quoting and
`BEGIN ATOMIC ... END` bodies, so a `;` inside any of them never ends a statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Identifier characters as negated ASCII classes: a letter or `_` starts a word, digits (and `$`, outside a
# dollar-quote tag) continue it, and every non-ASCII character is a letter, as in Postgres. A class spelled
# with the range `\x80-\uffff` means the same, but `re` builds a 64K-entry table for it when the module loads
# (~15 ms, paid by every `migrations` command).
_WORD_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_TAG_CHAR = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_WORD_CHAR = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_TOKEN = re.compile(
    r"""--[^\n]*"""  # line comment
    r"""|/\*"""  # block comment start (nested, handled by hand)
    r"""|[Ee]'"""  # escape string
    r"""|'"""  # string
    r"""|"(?:[^"]|"")*(?:"|\Z)"""  # quoted identifier
    rf"""|\$(?:{_WORD_START}{_TAG_CHAR}*)?\$"""  # dollar-quote tag
    r"""|;"""
    rf"""|{_WORD_START}{_WORD_CHAR}*""",  # word
)

_TX_CONTROL = re.compile(
    r"^(?:begin|start\s+transaction|commit|end|abort|rollback(?!\s+(?:work\s+|transaction\s+)?to\b)"
    r"|prepare\s+transaction|commit\s+prepared|rollback\s+prepared)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """One top-level statement: its text (comments kept) and where it starts in the file (0-based)."""

    start: int
    end: int
    text: str

    @property
    def code(self) -> str:
        """The statement with comments removed and whitespace collapsed (used for classification only)."""
        return strip_comments(self.text)


def _skip_block_comment(sql: str, pos: int) -> int:
    depth = 0
    n = len(sql)
    while pos < n:
        if sql.startswith("/*", pos):
            depth += 1
            pos += 2
        elif sql.startswith("*/", pos):
            depth -= 1
            pos += 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return n


def _skip_string(sql: str, pos: int, backslash: bool) -> int:
    """`pos` is just after the opening quote; returns the index after the closing one (the end if open)."""
    # imported here: schema.sqltext compiles regexes over all of Unicode when it loads (~20 ms), and most
    # migration files are checked without a split (versioned.files._plain), so `migrations up` never needs it
    from migrate_assets.schema.sqltext import closing_quote

    end = closing_quote(sql, pos, "'", backslash)
    return len(sql) if end < 0 else end + 1


def _tokens(sql: str) -> Iterator[tuple[str, int, int]]:
    """The tokens of `sql` as (token, start, end), with strings, dollar-quoted bodies and block comments
    consumed whole, so no `;` or word inside them is ever seen."""
    pos, n = 0, len(sql)
    while pos < n:
        m = _TOKEN.search(sql, pos)
        if not m:
            return
        tok, start, pos = m.group(0), m.start(), m.end()
        if tok == "/*":
            pos = _skip_block_comment(sql, start)
        elif tok in ("'", "e'", "E'"):
            pos = _skip_string(sql, pos, backslash=tok != "'")
        elif tok.startswith("$") and tok.endswith("$"):
            close_at = sql.find(tok, pos)
            pos = n if close_at < 0 else close_at + len(tok)
        yield tok, start, pos


def _skip_trivia(sql: str, pos: int, end: int) -> int:
    """The index of the first character after leading whitespace and comments."""
    while pos < end:
        if sql[pos].isspace():
            pos += 1
        elif sql.startswith("--", pos):
            nl = sql.find("\n", pos)
            pos = end if nl < 0 else nl + 1
        elif sql.startswith("/*", pos):
            pos = _skip_block_comment(sql, pos)
        else:
            break
    return min(pos, end)


def split_statements(sql: str) -> list[Statement]:
    """Top-level statements of `sql`, in order; whitespace/comment-only pieces are dropped."""
    out: list[Statement] = []
    start = 0
    atomic_depth = 0  # inside BEGIN ATOMIC ... END (CASE ... END nests within it)
    prev_word = ""
    n = len(sql)

    def close(end: int) -> None:
        first = _skip_trivia(sql, start, end)
        if first < end and not (first == end - 1 and sql[first] == ";"):
            out.append(Statement(first, end, sql[first:end].rstrip()))

    for tok, tok_start, tok_end in _tokens(sql):
        if tok == ";":
            if atomic_depth == 0:
                close(tok_start + 1)
                start = tok_end
                prev_word = ""
        elif tok[0].isalpha() or tok[0] == "_":
            word = tok.lower()
            if word == "atomic" and prev_word == "begin":
                atomic_depth += 1
            elif atomic_depth and word == "case":
                atomic_depth += 1
            elif atomic_depth and word == "end":
                atomic_depth -= 1
            prev_word = word
    close(n)
    return out


def strip_comments(sql: str) -> str:
    """`sql` without comments and with whitespace collapsed; strings and identifiers are kept verbatim."""
    parts: list[str] = []
    last = 0
    for tok, tok_start, tok_end in _tokens(sql):
        if tok.startswith("--") or tok == "/*":
            parts.append(sql[last:tok_start])
            parts.append(" ")
            last = tok_end
    parts.append(sql[last:])
    return " ".join("".join(parts).split())


def is_empty(sql: str) -> bool:
    """True when `sql` holds nothing but whitespace, comments and semicolons."""
    return not split_statements(sql)


def transaction_control(statements: list[Statement]) -> list[Statement]:
    """Top-level statements that begin or end a transaction (they would defeat the per-migration transaction)."""
    return [s for s in statements if _TX_CONTROL.match(s.text)]


def locate(sql: str, position: int) -> tuple[int, int | None]:
    """(line, statement number), both 1-based, of a 1-based character `position` in `sql`."""
    index = max(0, min(position - 1, len(sql)))
    line = sql.count("\n", 0, index) + 1
    for i, stmt in enumerate(split_statements(sql), start=1):
        if index < stmt.end:
            return line, i
    return line, None
