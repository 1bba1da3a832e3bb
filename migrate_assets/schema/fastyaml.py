"""PyYAML's reading of a YAML document, parsed by rapidyaml.

Planning 2,000 tables spent most of its time in PyYAML's node composition (its C parser still builds a Python
node and two marks per scalar). rapidyaml parses the same text natively and emits JSON, which the C `json`
module turns into Python data. The two libraries read plain scalars differently (YAML 1.1 vs 1.2: `yes`, `~`,
`0x1F`, `1_000`, `2001-12-14`, and rapidyaml's JSON rewrites `nan` as `.nan`, and even the quoted key 'inf'
as ".inf"), so the JSON gives the shape and only some leaves:
- JSON text (`_json`) is read by `json` itself, its numbers typed by PyYAML's rules;
- block-style text (`_Reader._lean`): a JSON string is kept unless PyYAML would type it (which also catches
  every rewrite, since PyYAML reads `.nan` as a float); those and all numbers are read from the tree, plain
  ones through PyYAML's own resolver and constructor;
- anything else (flow collections, ...; `_Reader._container`): every key and scalar is read from the tree,
  node by node in document order.

Whatever this module does not reproduce exactly is declined (`Declined`), and the caller parses with PyYAML:
anchors, aliases, tags, merge keys, block scalars, backslash escapes, tabs, directives, characters PyYAML
refuses, duplicate keys, empty implicit keys, documents rapidyaml cannot parse. rapidyaml accepts some text
PyYAML refuses; those found are declined, and property tests in `tests/schema/test_fastyaml.py` (40,000 dumped
and 40,000 hand-typed documents when last run at scale) compare both readers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import yaml
from yaml.nodes import ScalarNode

try:
    import ryml
except ImportError:  # pragma: no cover - a dependency; without it every document takes PyYAML's path
    ryml = None
else:
    from ryml import _ryml as _raw  # the accessors without the SWIG proxy's extra call


class Declined(Exception):
    """This document needs PyYAML itself (see the module docstring)."""


# characters PyYAML refuses to read (yaml.reader.Reader.NON_PRINTABLE), and the ASCII bytes that pass it
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PRINTABLE_ASCII = bytes([0x0A, 0x0D, *range(0x20, 0x7F)])
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_JSON_LITERAL = re.compile(rb"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null")
_INDICATORS = frozenset(",[]{}#&*!|>'\"%@`")  # a plain scalar cannot start with one of these
#: characters that, at the start of a node, mean a flow collection, anchor, alias, tag, block scalar, ...
_NODE_INDICATOR = re.compile(r"[][{}&*!|>%@`,?]")
_DOUBTFUL: dict[str, bool] = {}
_CLEAN_KEYS: set[str] = set()  # mapping keys known not to be `_doubtful`
_PLAIN: dict[bytes, Any] = {}  # plain scalar text -> PyYAML's value (immutable values only)
_PLAIN_MAX = 200_000
_MISSING = object()
_stderr_lock = threading.Lock()

if ryml is not None:
    _CONTAINER = ryml.MAP | ryml.SEQ
    _KEY_QUOTED = ryml.KEY_SQUO | ryml.KEY_DQUO
    _VAL_QUOTED = ryml.VAL_SQUO | ryml.VAL_DQUO
    _REFUSED = (
        ryml.KEYREF | ryml.VALREF | ryml.KEYANCH | ryml.VALANCH | ryml.KEYTAG | ryml.VALTAG
        | ryml.KEY_LITERAL | ryml.KEY_FOLDED | ryml.VAL_LITERAL | ryml.VAL_FOLDED
    )  # fmt: skip


def forget() -> None:
    """Empty the caches of scalars and keys read (a spec loader calls it after a spec set)."""
    _DOUBTFUL.clear()
    _CLEAN_KEYS.clear()
    _PLAIN.clear()


def plain_value(text: bytes) -> Any:
    """What PyYAML's SafeLoader makes of a plain (unquoted) scalar."""
    value = _PLAIN.get(text, _MISSING)
    if value is _MISSING:
        s = text.decode()
        if s[:1] in _INDICATORS or (s[:1] in "-?:" and s[1:2] in ("", " ")):
            raise Declined("a plain scalar PyYAML does not allow")  # rapidyaml reads `k: }` as "}"
        tag = _RESOLVER.resolve(ScalarNode, s, (True, False))
        if tag == _MERGE_TAG:
            raise Declined("merge key")
        try:
            value = _CONSTRUCTOR.construct_object(ScalarNode(tag, s))
        except yaml.YAMLError as exc:  # e.g. the `=` value tag: let PyYAML report it
            raise Declined(str(exc)) from exc
        if len(_PLAIN) >= _PLAIN_MAX:
            _PLAIN.clear()
        _PLAIN[text] = value
    return value


def _starts_a_node(text: str) -> bool:
    """Whether one of `_NODE_INDICATOR`'s characters stands at the start of a node: first on its line, after
    `[`, `{` or `,`, or after `: `, `? `, `- ` (spaces allowed in between). `(c11 > 0)` does not count, nor two
    forms PyYAML's dumper writes: an empty `[]` / `{}` ending a line, and a line continuing a plain scalar
    (`_continues_plain`), such as a long view definition folded before its `> 0`.

    Written for speed (it reads every spec file): each indicator character is found by `str.find`, much
    faster than a regular expression's scan for a character class, and in any order, as each occurrence is
    judged on its own. The empty collections are passed over where they stand (`_empty_flow_at`) rather than
    replaced in a copy of the text, as the first version of this did (`_starts_a_node_in`, kept); only a
    continuation line, whose test reads the lines above, is decided on that copy."""
    empties = "[]" in text or "{}" in text
    find = text.find
    for c in _INDICATOR_CHARS:
        i = find(c)
        while i >= 0:
            j = i
            if empties and c in "[]{}" and (_empty_flow_at(text, i) or (c in "]}" and _empty_flow_at(text, i - 1))):
                i = find(c, i + 1)
                continue
            while j > 0 and text[j - 1] == " ":
                j -= 1
            if j == 0 or text[j - 1] in "\n[{," or (j < i and text[j - 1] in ":?-"):
                if j > 0 and text[j - 1] == "\n":
                    if empties:  # the lines above may hold an empty collection, which reads as `x` there
                        return _starts_a_node_in(_EMPTY_FLOW.sub("x", text))
                    if not _continues_plain(text, j, i):
                        return True
                else:
                    return True
            i = find(c, i + 1)
    return False


def _starts_a_node_in(text: str) -> bool:
    """`_starts_a_node` on a text whose empty collections ending a line were replaced by `x`."""
    for m in _NODE_INDICATOR.finditer(text):
        i = j = m.start()
        while j > 0 and text[j - 1] == " ":
            j -= 1
        if j == 0 or text[j - 1] in "\n[{," or (j < i and text[j - 1] in ":?-"):
            if j > 0 and text[j - 1] == "\n" and _continues_plain(text, j, i):
                continue
            return True
    return False


#: the characters of `_NODE_INDICATOR`
_INDICATOR_CHARS = ",[]{}&*!|>%@`?"


def _empty_flow_at(text: str, i: int) -> bool:
    """Whether `_EMPTY_FLOW` matches at `i`: `[]` or `{}` after `: ` or `- `, then only spaces to the end of
    the line."""
    if i < 2 or text[i - 1] != " " or text[i - 2] not in ":-" or text[i:i + 2] not in ("[]", "{}"):
        return False
    end = text.find("\n", i + 2)
    return not text[i + 2:end if end >= 0 else len(text)].strip(" ")


#: an empty flow collection as a whole value (`key: []`, `- {}`), read alike by both libraries
_EMPTY_FLOW = re.compile(r"(?m)(?<=[:-] )(?:\[\]|\{\}) *$")
#: a block mapping entry with a plain value: indentation, `- ` entries, key, value (no comment, no quote, no
#: indicator first)
_PLAIN_ENTRY = re.compile(r"( *(?:- +)*)([^\s#'\"\[\]{}&*!|>%@`,?:-][^#]*?): +([^\s#'\"\[\]{}&*!|>%@`,?:-][^#]*)")


def _continues_plain(text: str, start: int, at: int) -> bool:
    """Whether the line at `start` (its first non-space character at `at`) continues a plain scalar: above it,
    after more such lines, stands `key: plain text` with no comment; every line in between and this one is
    indented more than that key, does not start with `-`, `?`, `:`, `#` or a quote, and has nothing that could
    end the scalar (`: `, ` #`, a trailing `:`). PyYAML then reads the line as more text of the scalar,
    whatever character it starts with. Anything else counts as a node start."""
    least = at - start  # the smallest indentation of the continuation lines
    while True:
        end = text.find("\n", at)
        line = text[at:] if end < 0 else text[at:end]
        if line[:1] in "-?:#'\"" or ": " in line or " #" in line or line.rstrip().endswith(":"):
            return False
        if start == 0:
            return False
        prev_start = text.rfind("\n", 0, start - 1) + 1
        m = _PLAIN_ENTRY.fullmatch(text, prev_start, start - 1)
        if m is not None:
            value = m.group(3).rstrip()
            return least > len(m.group(1)) and ": " not in value and not value.endswith(":")
        prev = text[prev_start:start - 1]
        indent = len(prev) - len(prev.lstrip(" "))
        if indent == len(prev):
            return False  # a blank line
        start, at, least = prev_start, prev_start + indent, min(least, indent)


def _doubtful(s: str) -> bool:
    """Whether PyYAML could read the JSON string `s` as something else than `s` (see `_Reader._lean`)."""
    doubt = _DOUBTFUL.get(s)
    if doubt is None:
        typed = _typed_matchers().get(s[:1], _resolved_typed)
        doubt = (
            typed(s) is not None
            or s[:1] in _INDICATORS
            or (s[:1] in "-?:" and s[1:2] in ("", " "))
        )
        if len(_DOUBTFUL) >= _PLAIN_MAX:
            _DOUBTFUL.clear()
        _DOUBTFUL[s] = doubt
    return doubt


def _resolved_typed(s: str) -> bool | None:
    """True where PyYAML's resolver gives the plain scalar `s` another tag than str, else None."""
    return True if _RESOLVER.resolve(ScalarNode, s, (True, False)) != _STR_TAG else None


_TYPED: dict[str, Callable[[str], object | None]] = {}


def _typed_matchers() -> dict[str, Callable[[str], object | None]]:
    """By first character: one regular expression that matches where one of PyYAML's implicit resolvers for that
    character does (each gives a tag other than str, so any match means "typed"): one match instead of a
    `resolve` call trying them in turn. A character without resolvers maps to "never typed"; one whose
    resolvers cannot be joined so (or any wildcard resolver) is left to `_resolved_typed`. Built on first use."""
    if not _TYPED:
        resolvers = _RESOLVER.yaml_implicit_resolvers
        joined: dict[tuple[tuple[str, int], ...], Callable[[str], object | None]] = {}
        out: dict[str, Callable[[str], object | None]] = {}
        if None not in resolvers:
            for ch in [chr(c) for c in range(0x20, 0x7F)] + [""]:
                found = resolvers.get(ch, [])
                if any(tag == _STR_TAG or "#" in rx.pattern or rx.flags & ~(re.X | re.U) for tag, rx in found):
                    continue
                key = tuple((rx.pattern, rx.flags & re.X) for _, rx in found)
                if key not in joined:
                    joined[key] = re.compile("|".join(f"(?{'x' if x else ''}:{p})" for p, x in key)).match \
                        if key else _never
                out[ch] = joined[key]
        _TYPED.update(out)
        _TYPED.setdefault("\x00", _resolved_typed)  # marks the table built even if every character was left out
    return _TYPED


def _never(s: str) -> None:
    return None


def _doubtful_key(s: str) -> bool:
    """`_doubtful`, or a space or line break in the key: a quoted scalar begun on an earlier line may end as a
    key (`k: 'a` then `  b': c`), which rapidyaml reads as the key `a b` and PyYAML refuses, as YAML keeps an
    implicit key on one line. The tree then tells how the key was written (`_Reader._from_tree`, which declines
    a quoted one: such keys are rare in spec files)."""
    return _doubtful(s) or " " in s or "\n" in s


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """rapidyaml prints every parse error to file descriptor 2 before raising; the caller reports it better."""
    with _stderr_lock:
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load(text: str) -> Any:
    """The data `yaml.safe_load(text)` returns, or `Declined`."""
    raw = text.encode()
    if (
        ryml is None
        or "\\" in text  # escapes
        or text.startswith(("%", "\ufeff"))  # directives, byte order mark
        or "\n%" in text
        or (raw.translate(None, _PRINTABLE_ASCII) if text.isascii() else _NON_PRINTABLE.search(text) or "\t" in text)
    ):
        raise Declined("left to PyYAML")
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return _json(text)
        except ValueError:
            pass  # flow-style YAML, not JSON: rapidyaml below
    try:
        with _quiet_stderr():
            tree = ryml.parse_in_arena(raw)
    except Exception as exc:  # rapidyaml's own exception types; PyYAML will name the problem
        raise Declined("rapidyaml could not parse it") from exc
    root = tree.root_id()
    if tree.type(root) & ryml.STREAM == ryml.STREAM:  # STREAM's bits include SEQ's
        if tree.num_children(root) != 1:
            raise Declined("not a single document")
        root = tree.first_child(root)
    return _Reader(tree, root, text).read(block_style=not _starts_a_node(text))


def _json(text: str) -> Any:
    """JSON text (which is YAML) read as PyYAML reads it: without backslashes its strings are double-quoted
    scalars with the same content, and its numbers and constants are plain scalars, typed by PyYAML's rules
    (`1e3` and `NaN` stay strings). ValueError when the text is not JSON."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise Declined("duplicate key")
        return out

    def plain(literal: str) -> Any:
        return plain_value(literal.encode())

    return json.loads(text, object_pairs_hook=unique, parse_int=plain, parse_float=plain, parse_constant=plain)


def _put(out: dict[Any, Any], key: Any, value: Any) -> None:
    """A typed key into the mapping; keys that only typing made equal (`1`, `01`) or unhashable go to PyYAML."""
    try:
        if key in out:
            raise Declined("keys equal once typed")
    except TypeError as exc:
        raise Declined("unhashable key") from exc
    out[key] = value


class _Reader:
    """Walks the JSON data and the tree's nodes together (both in document order), re-reading plain scalars.

    It runs once per node of every spec file, so it calls rapidyaml's raw accessors, not the SWIG proxies.
    """

    def __init__(self, tree: Any, root: int, text: str) -> None:
        self.tree = tree
        self.root = root
        self.text = text
        self.next = root + 1

    def read(self, block_style: bool) -> Any:
        """`block_style`: the text has no flow collection, anchor, alias, tag, block scalar or other
        indicator at the start of a node (`_starts_a_node`), so the lean walk may be used."""
        t, root = self.tree, self.root
        flags = _raw.Tree_type(t, root)
        if flags & _REFUSED:
            raise Declined("anchor, alias, tag or block scalar")
        if not flags & _CONTAINER:
            if not flags & ryml.VAL:  # an empty document, if the text says so too (rapidyaml reads "!\n!" as one)
                if any(ln.strip() and not ln.lstrip().startswith(("#", "---", "...")) for ln in self.text.splitlines()):
                    raise Declined("an empty tree from a text that is not empty")
                return None
            view = _raw.Tree_val(t, root)
            text = b"" if view is None else view.tobytes()
            if flags & _VAL_QUOTED:
                return text.decode()
            return None if flags & ryml.VALNIL else plain_value(text)
        try:
            # a repeated key leaves the JSON with fewer entries than the tree has nodes: the count check
            # after the walk declines it
            data = json.loads(ryml.emit_json_malloc(t, root))
        except ValueError as exc:  # rapidyaml writes some plain scalars (`+12`) as JSON cannot have them
            raise Declined("rapidyaml's JSON did not parse") from exc
        if block_style:
            value = self._lean(data)
        else:
            value = self._container(data, flags, json_only=bool(flags & ryml.FLOW_ML))
        if self.next != t.size():
            raise Declined("node count mismatch")
        return value

    def _lean(self, emitted: dict[str, Any] | list[Any]) -> Any:
        """The walk for block-style text: only leaves and keys whose JSON form could read differently in
        PyYAML (`_doubtful`) and numbers are looked up in the tree; the node counter keeps document order.

        Why the rest need no lookup: rapidyaml's JSON gives a quoted scalar's content and a plain scalar's text
        unchanged, except the nan/inf family, which it writes as `.nan` / `.inf` / `-.inf` (values only when
        plain, keys always) - and PyYAML reads those as floats, so they are doubtful. Bare `true`, `false` and
        `null` come only from those plain words (or an empty value), which PyYAML reads alike.

        It runs once per node of every spec file, so it is written for speed: the JSON data is fresh and ours,
        so values are replaced in place (most containers stay as they are), one subset test clears a mapping's
        keys (`_CLEAN_KEYS`), and leaves are handled inline rather than by a call each."""
        if isinstance(emitted, dict):
            keys = emitted.keys()
            if not keys <= _CLEAN_KEYS:
                if any(_doubtful_key(k) for k in keys):
                    return self._lean_keys(emitted)
                if len(_CLEAN_KEYS) < _PLAIN_MAX:
                    _CLEAN_KEYS.update(keys)
            pairs: Any = emitted.items()
        else:
            pairs = enumerate(emitted)
        get = _DOUBTFUL.get
        node = self.next
        for slot, item in pairs:
            c = item.__class__
            if c is str:
                doubt = get(item)
                if doubt or (doubt is None and _doubtful(item)):
                    emitted[slot] = self._from_tree(node)  # type: ignore[index]
                node += 1
            elif c is dict or c is list:
                self.next = node + 1
                value = self._lean(item)
                if value is not item:
                    emitted[slot] = value  # type: ignore[index]
                node = self.next
            elif item is None or c is bool:
                node += 1
            else:  # a number: its text decides (PyYAML reads 1e3 as a string)
                emitted[slot] = self._from_tree(node)  # type: ignore[index]
                node += 1
        self.next = node
        return emitted

    def _lean_keys(self, emitted: dict[str, Any]) -> Any:
        """`_lean` for a mapping with a doubtful key: keys are read from the tree, the mapping built anew."""
        out: dict[Any, Any] = {}
        for key, item in emitted.items():
            node = self.next
            value = self._lean_item(item)
            if _doubtful_key(key):
                _put(out, self._from_tree(node, key=True), value)
            else:
                out[key] = value
        return out

    def _lean_item(self, emitted: Any) -> Any:
        node = self.next
        self.next = node + 1
        if emitted.__class__ is str:
            doubt = _DOUBTFUL.get(emitted)
            return self._from_tree(node) if doubt or (doubt is None and _doubtful(emitted)) else emitted
        if emitted is None or emitted.__class__ is bool:
            return emitted
        if isinstance(emitted, dict | list):
            return self._lean(emitted)
        return self._from_tree(node)  # a number: its text decides (PyYAML reads 1e3 as a string)

    def _from_tree(self, node: int, key: bool = False) -> Any:
        f = _raw.Tree_type(self.tree, node)
        if f & _REFUSED:
            raise Declined("anchor, alias, tag or block scalar")
        if key and f & ryml.KEYNIL:
            raise Declined("an empty key")  # `- :` reads as {null: null} in rapidyaml; PyYAML refuses it
        view = (_raw.Tree_key if key else _raw.Tree_val)(self.tree, node)
        text = b"" if view is None else view.tobytes()
        if f & (_KEY_QUOTED if key else _VAL_QUOTED):
            if key and (b" " in text or b"\n" in text):
                raise Declined("a quoted key with a space may have spanned lines")  # see `_doubtful_key`
            return text.decode()
        return None if f & ryml.VALNIL and not key else plain_value(text)

    def _container(self, emitted: dict[str, Any] | list[Any], flags: int, json_only: bool) -> Any:
        """`json_only`: inside a flow collection written over several lines, where rapidyaml accepts implicit
        keys that PyYAML refuses, only JSON's plain scalars (numbers, true, false, null) are read here."""
        if isinstance(emitted, list):
            if not flags & ryml.SEQ:
                raise Declined("node kind mismatch")
            return [self._item(item, json_only)[2] for item in emitted]
        if not flags & ryml.MAP:
            raise Declined("node kind mismatch")
        out: dict[Any, Any] = {}
        for item in emitted.values():
            node, f, value = self._item(item, json_only)
            if json_only and not f & _KEY_QUOTED:
                raise Declined("a plain key in a multi-line flow collection")
            _put(out, self._from_tree(node, key=True), value)
        return out

    def _item(self, emitted: Any, json_only: bool) -> tuple[int, int, Any]:
        """The next node, its flags and its value as PyYAML reads it."""
        node = self.next
        self.next = node + 1
        f = _raw.Tree_type(self.tree, node)
        if f & _REFUSED:
            raise Declined("anchor, alias, tag or block scalar")
        if f & _CONTAINER:
            if not isinstance(emitted, dict | list):
                raise Declined("node kind mismatch")
            return node, f, self._container(emitted, f, json_only or bool(f & ryml.FLOW_ML))
        view = _raw.Tree_val(self.tree, node)
        text = b"" if view is None else view.tobytes()
        if f & _VAL_QUOTED:
            if not isinstance(emitted, str):
                raise Declined("quoted scalar not emitted as a string")
            return node, f, text.decode()
        if f & ryml.VALNIL:
            return node, f, None
        if json_only and not _JSON_LITERAL.fullmatch(text):
            raise Declined("a plain scalar in a multi-line flow collection")
        value = _PLAIN.get(text, _MISSING)
        return node, f, plain_value(text) if value is _MISSING else value
