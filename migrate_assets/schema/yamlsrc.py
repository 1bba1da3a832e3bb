"""YAML loading that remembers where every key came from.

Every input format of the package (migrate.yaml, table specs, change files) reports problems with file, line
and key path; this module is the one place that knows how to find the line of a key path.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migrate_assets.errors import InvalidInputError, Problem
from migrate_assets.schema import fastyaml

KeyPath = tuple[str | int, ...]

#: libyaml's C parser when present (same nodes and marks, faster than the pure-Python one)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: aliases one document may use, and the nodes they may add once expanded (a 481-byte "billion laughs"
#: document expands to ~10^9 nodes; nothing a project file needs comes near these)
MAX_ALIASES = 1000
MAX_ALIAS_NODES = 100_000


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class YamlDoc:
    """A parsed YAML document plus the 1-based line of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[Problem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """Line of the deepest known prefix of `path` (a missing key reports its parent's line)."""
        return _deepest(self.lines, path)

    @property
    def locator(self) -> Callable[[KeyPath], int | None]:
        """`line_of` for keeping: it does not hold the document's data."""
        return functools.partial(_deepest, self.lines)

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(file=self.file, line=self.line_of(path), key=format_path(path), message=message)


def _deepest(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return lines.get((), None)


def _walk(node: yaml.Node, path: KeyPath, doc: YamlDoc) -> None:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                doc.duplicates.append(
                    Problem(
                        file=doc.file,
                        line=key_node.start_mark.line + 1,
                        key=format_path((*path, key)),
                        message="duplicate key",
                    )
                )
            seen.add(key)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), doc)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), doc)


def check_aliases(text: str, file: str) -> None:
    """Refuse a document whose aliases are too many, recursive, or expand to too many nodes, before anything
    is built from it (PyYAML shares an alias's node, but every walk of the data — line map, `${VAR}` expansion,
    validation — visits each use again). One pass over the parser's events; text with no `*` costs nothing."""
    if "*" not in text:
        return
    sizes: dict[str, int] = {}  # anchor -> nodes of its (finished) subtree
    frames: list[list[Any]] = [[None, 0]]  # open collections: [anchor, nodes so far]
    aliases = added = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                size = sizes.get(event.anchor or "")
                if size is None and any(f[0] == event.anchor for f in frames):
                    _too_big(file, event, f"alias *{event.anchor} refers to its own anchor (recursive)")
                size = size or 1
                added += size
                if aliases > MAX_ALIASES:
                    _too_big(file, event, f"more than {MAX_ALIASES} aliases")
                if added > MAX_ALIAS_NODES:
                    _too_big(file, event, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes "
                                          f"(*{event.anchor} alone is {size:,})")
                frames[-1][1] += size
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor:
                    sizes[event.anchor] = 1
                frames[-1][1] += 1
            elif isinstance(event, yaml.CollectionStartEvent):
                frames.append([event.anchor, 1])
            elif isinstance(event, yaml.CollectionEndEvent) and len(frames) > 1:
                anchor, size = frames.pop()
                if anchor:
                    sizes[anchor] = size
                frames[-1][1] += size
    except yaml.YAMLError:
        return  # the parse proper names the syntax error


def _too_big(file: str, event: yaml.Event, why: str) -> None:
    line = event.start_mark.line + 1 if event.start_mark is not None else None
    raise InvalidInputError([Problem(file=file, line=line, message=f"refused YAML aliases: {why}")])


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; syntax errors become InvalidInputError naming file and line."""
    check_aliases(text, file)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise InvalidInputError([Problem(file=file, line=line, message=f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError([Problem(file=file, message=f"invalid YAML: {exc}")]) from exc
    doc = YamlDoc(file=file, data=data)
    if node is not None:
        _walk(node, (), doc)
    return doc


def load_yaml(path: str | Path) -> YamlDoc:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError([Problem(file=str(p), message="file not found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([Problem(file=str(p), message=f"cannot read: {exc}")]) from exc
    return parse_yaml(text, str(p))


class _Lines:
    """The line map of a text, built by PyYAML on the first question. Holds the text, not the parsed data, so
    the `Source`s that keep it (for later messages) do not keep a whole spec set's data alive; and the text
    compressed (zlib's fastest level: ~0.5 ms and 3 % of the size for 100 spec tables), as most are never asked:
    a 10,000-table spec set would otherwise keep 17 MB of YAML for its error messages."""

    def __init__(self, text: str, file: str) -> None:
        self._packed: bytes | None = zlib.compress(text.encode(), 1)
        self.file = file
        self.lines: dict[KeyPath, int] = {}

    def __call__(self, path: KeyPath) -> int | None:
        if self._packed is not None:
            self.lines = parse_yaml(zlib.decompress(self._packed).decode(), self.file).lines
            self._packed = None
        return _deepest(self.lines, path)


class _LazyLinesDoc(YamlDoc):
    """A document whose data came without marks: line numbers are computed only when a problem needs one, so a
    clean spec set never pays for them."""

    def __init__(self, file: str, data: Any, text: str) -> None:
        super().__init__(file=file, data=data)
        self.locate = _Lines(text, file)

    def line_of(self, path: KeyPath) -> int | None:
        return self.locate(path)

    @property
    def locator(self) -> Callable[[KeyPath], int | None]:
        return self.locate


def parse_yaml_fast(text: str, file: str) -> YamlDoc:
    """`parse_yaml` for big inputs: the same data, read by rapidyaml where that gives exactly PyYAML's result
    (`fastyaml`), with lines computed on demand; anything else goes through `parse_yaml`."""
    try:
        return _LazyLinesDoc(file, fastyaml.load(text), text)
    except fastyaml.Declined:
        return parse_yaml(text, file)


def doc_from_data(file: str, data: Any, text: str) -> YamlDoc:
    """A document whose data is already known (e.g. from a cache); lines come from `text` only on demand."""
    return _LazyLinesDoc(file, data, text)
