"""A small SQL expression checker and normaliser, used without a database.

It catches what can be known offline (unbalanced quotes or brackets, statement separators, comments, dangling
operators). It is a first filter, not the guard: `exprcheck` has Postgres parse every expression before any of
it is used (see there). The token rules follow Postgres' lexer where it matters for finding the end of a
literal: identifiers may hold non-ASCII letters and `$`, and an operator never swallows the start of a comment
(`+/*` is `+` then a comment, as Postgres reads it), whitespace is only Postgres' own (a no-break space is part
of an identifier, as `\u00a0$a$` is one identifier and not a dollar quote), and a literal followed by a line break
and another quote goes on in the same mode (`E'a'` newline `'\''` is one E'' literal). `normalize` gives a comparison form that lets
the common spellings of the same default (`'x'` vs `'x'::text`, extra parentheses, case of keywords) match
without a round trip.
"""

from __future__ import annotations

import functools
import re

_DOLLAR = re.compile(r"\$([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_PARAM = re.compile(r"\$\d+")
_TOKEN = re.compile(
    r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
    r"|::|(?:(?!--|/\*)[-+*/<>=~!@#%^&|`?])+|."
)


def closing_quote(text: str, j: int, quote: str, escapes: bool) -> int:
    """Index of the quote that closes a literal whose body starts at `j`, or -1 if it never closes. A doubled
    quote is part of the body; with `escapes` (E'...') so is a backslash-escaped character. The one rule for
    SQL quoting here and in the migration-file scanner (versioned/sqltext)."""
    n = len(text)
    while j < n:
        if escapes and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if j + 1 < n and text[j + 1] == quote:
                j += 2
                continue
            return j
        j += 1
    return -1


def _closing(expr: str, j: int, quote: str, escapes: bool, what: str) -> int:
    end = closing_quote(expr, j, quote, escapes)
    if end < 0:
        raise ValueError(f"unterminated {what}")
    return end


#: Postgres' whitespace (scan.l `space`); any other character, a no-break space too, is part of a token
_SPACE = frozenset(" \t\n\r\f\v")
#: what joins two literals into one (scan.l `quotecontinue`): spaces with a line break, then the next quote
_CONTINUE = re.compile(r"[ \t\f\v]*[\n\r][ \t\n\r\f\v]*'")


def _string_end(expr: str, j: int, escapes: bool) -> int:
    """Index of the quote that ends a string literal whose body starts at `j`, following Postgres into a
    continuation (`'a'` newline `'b'` is one literal, read in the first one's mode: E'' escapes go on)."""
    while True:
        end = _closing(expr, j, "'", escapes, "string literal")
        m = _CONTINUE.match(expr, end + 1)
        if m is None:
            return end
        j = m.end()


def tokens(expr: str) -> list[str]:
    """Split into tokens: quoted strings/identifiers stay whole; raises ValueError on bad syntax."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in _SPACE:
            i += 1
            continue
        if ch == "'" or (ch in "eEbBxXnN" and i + 1 < n and expr[i + 1] == "'") or (
            ch in "uU" and expr.startswith("&'", i + 1)
        ):
            start = i + 1 if ch == "'" else i + 3 if expr[i + 1] == "&" else i + 2
            j = _string_end(expr, start, escapes=ch in "eE")
            out.append(expr[i : j + 1])
            i = j + 1
            continue
        if ch == '"':
            j = _closing(expr, i + 1, '"', escapes=False, what="quoted identifier")
            out.append(expr[i : j + 1])
            i = j + 1
            continue
        if ch == "$":
            if (p := _PARAM.match(expr, i)) is not None:  # $1: a parameter, not a dollar quote
                out.append(p.group(0))
                i = p.end()
                continue
            m = _DOLLAR.match(expr, i)
            if m:
                end = expr.find(m.group(0), m.end())
                if end < 0:
                    raise ValueError("unterminated dollar-quoted string")
                out.append(expr[i : end + len(m.group(0))])
                i = end + len(m.group(0))
                continue
        if expr.startswith("--", i) or expr.startswith("/*", i):
            raise ValueError("comments are not allowed in an expression")
        if ch == ";":
            raise ValueError("';' is not allowed in an expression")
        m = _TOKEN.match(expr, i)
        assert m is not None
        out.append(m.group(0))
        i = m.end()
    return out


def _session_dependent(tok: str) -> bool:
    """A plain or N'' literal with a backslash: Postgres reads it as written only with
    standard_conforming_strings on; off, `\\'` does not end it, and the text after it is read as SQL."""
    return "\\" in tok and (tok[0] == "'" or tok[0] in "nN" and tok[1:2] == "'")


_OPEN = {"(": ")", "[": "]"}


#: words that open a subquery right after `(`; Postgres refuses subqueries in defaults and index predicates
_SUBQUERY = frozenset({"select", "values", "table", "with"})


@functools.lru_cache(maxsize=4096)
def check_expression(expr: str, subqueries: bool = False) -> str | None:
    """Why `expr` cannot be one SQL expression, or None when it looks like one (`subqueries`: may contain
    `(SELECT …)`, as an UPDATE's value may; a default or an index predicate may not)."""
    if not expr.strip():
        return "expression is empty"
    if "\x00" in expr:
        return "a NUL character is not allowed in an expression"
    try:
        toks = tokens(expr)
    except ValueError as exc:
        return str(exc)
    for t in toks:
        if t[0] == "$" and len(t) > 1 and t[1].isdigit():
            return f"parameter {t!r} is not allowed in an expression"
        if _session_dependent(t):
            return ("a backslash in a '…' literal reads differently where standard_conforming_strings is off "
                    "(a generated function is read again by each session that calls it); write it as "
                    "E'…' with \\\\ for each backslash")
    stack: list[str] = []
    prev = ""
    for t in toks:
        if not subqueries and prev == "(" and t.lower() in _SUBQUERY:
            return f"a subquery ({t} …) is not allowed here"
        if t in _OPEN:
            stack.append(_OPEN[t])
        elif t in (")", "]"):
            if not stack or stack.pop() != t:
                return f"unbalanced {t!r}"
            if prev in ("+", "-", "/", ",", "::") or (prev and prev[0] in "<>=~!@#%^&|?"):
                return f"dangling operator {prev!r}"
        elif t == "," and not stack:
            return "',' outside parentheses: a default is a single expression"
        prev = t
    if stack:
        return "unbalanced '('"
    last = toks[-1]
    if last in ("::", ",", ".") or (re.fullmatch(r"[-+*/<>=~!@#%^&|`?]+", last) is not None):
        return f"expression ends with {last!r}"
    first = toks[0]
    if first in ("::", ",", ")", "]") or first in ("*", "/", "=", "<", ">"):
        return f"expression starts with {first!r}"
    return None


@functools.lru_cache(maxsize=8192)
def normalize(expr: str) -> str:
    """Comparison form: tokens joined by single spaces, unquoted words lower-cased, outer parens dropped."""
    try:
        toks = tokens(expr)
    except ValueError:
        return expr.strip()
    toks = [t if t[0] in "'\"$" or "'" in t else t.lower() for t in toks]
    while len(toks) >= 2 and toks[0] == "(" and toks[-1] == ")" and _wraps(toks):
        toks = toks[1:-1]
    return " ".join(toks)


def _wraps(toks: list[str]) -> bool:
    depth = 0
    for i, t in enumerate(toks):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
            if depth == 0 and i != len(toks) - 1:
                return False
    return True


def defaults_match(desired: str | None, live: str | None, type_sql: str) -> bool | None:
    """True/False when sure without a database, None when Postgres must canonicalise `desired`."""
    if desired is None or live is None:
        return desired is None and live is None
    d, lv = normalize(desired), normalize(live)
    if d == lv:
        return True
    for cand in (f"{d} :: {type_sql}", f"( {d} ) :: {type_sql}"):
        if normalize(cand) == lv:
            return True
    return None
