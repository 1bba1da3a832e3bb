"""PyYAML's reading of a YAML document, parsed by rapidyaml.

Planning 2,000 tables spent most of its time in PyYAML's node composition (its C parser still builds a Python
node and two marks per scalar). rapidyaml parses the same text natively and emits JSON, which the C `json`
module turns into Python data. The two libraries read plain scalars differently (YAML 1.1 vs 1.2: `yes`, `~`,
`0x1F`, `1_000`, `2001-12-14`, and rapidyaml rewrites `nan` as `.nan`), so the JSON's leaves are not trusted:
every plain key and value is re-read from its original text with PyYAML's own resolver and constructor, node
by node in document order, and quoted ones (keys included: its JSON writes the key 'inf' as ".inf") are taken
from the tree. The JSON only gives the shape, which is cheaper to walk than the tree.

Whatever this module does not reproduce exactly is declined (`Declined`), and the caller parses with PyYAML:
anchors, aliases, tags, merge keys, block scalars, backslash escapes, tabs, directives, characters PyYAML
refuses, duplicate keys, documents rapidyaml cannot parse. A document rapidyaml accepts is assumed to be one
PyYAML accepts; the equivalence is tested property-based in `tests/schema/test_fastyaml.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
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
_JSON_LITERAL = re.compile(rb"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null")
_INDICATORS = frozenset(",[]{}#&*!|>'\"%@`")  # a plain scalar cannot start with one of these
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise Declined("duplicate key")
    return out


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
    return _Reader(tree, root).read()


class _Reader:
    """Walks the JSON data and the tree's nodes together (both in document order), re-reading plain scalars.

    It runs once per node of every spec file, so it calls rapidyaml's raw accessors, not the SWIG proxies.
    """

    def __init__(self, tree: Any, root: int) -> None:
        self.tree = tree
        self.root = root
        self.next = root + 1

    def read(self) -> Any:
        t, root = self.tree, self.root
        flags = _raw.Tree_type(t, root)
        if flags & _REFUSED:
            raise Declined("anchor, alias, tag or block scalar")
        if not flags & _CONTAINER:
            if not flags & ryml.VAL:
                return None  # an empty document
            view = _raw.Tree_val(t, root)
            text = b"" if view is None else view.tobytes()
            if flags & _VAL_QUOTED:
                return text.decode()
            return None if flags & ryml.VALNIL else plain_value(text)
        try:
            data = json.loads(ryml.emit_json_malloc(t, root), object_pairs_hook=_no_duplicates)
        except ValueError as exc:  # rapidyaml writes some plain scalars (`+12`) as JSON cannot have them
            raise Declined("rapidyaml's JSON did not parse") from exc
        value = self._container(data, flags, json_only=bool(flags & ryml.FLOW_ML))
        if self.next != t.size():
            raise Declined("node count mismatch")
        return value

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
            key: Any = None
            if not f & ryml.KEYNIL:
                view = _raw.Tree_key(self.tree, node)
                text = b"" if view is None else view.tobytes()
                if f & _KEY_QUOTED:
                    key = text.decode()
                elif json_only:
                    raise Declined("a plain key in a multi-line flow collection")
                else:
                    key = _PLAIN.get(text, _MISSING)
                    if key is _MISSING:
                        key = plain_value(text)
            try:
                if key in out:
                    raise Declined("keys equal once typed")
            except TypeError as exc:  # an unhashable key: PyYAML refuses it with a message
                raise Declined("unhashable key") from exc
            out[key] = value
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
