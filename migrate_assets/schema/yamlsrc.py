"""YAML loading that remembers where every key came from.

Every input format of the package (migrate.yaml, table specs, change files) reports problems with file, line
and key path; this module is the one place that knows how to find the line of a key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migrate_assets.errors import InvalidInputError, Problem

KeyPath = tuple[str | int, ...]

#: libyaml's C parser when present (same nodes and marks, several times faster on large spec sets)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(file=self.file, line=self.line_of(path), key=format_path(path), message=message)


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


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; syntax errors become InvalidInputError naming file and line."""
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


# ---------------------------------------------------------------------------------------------------------
# fast path for large spec sets (added for declarative schema planning): same YamlDoc, less work
# ---------------------------------------------------------------------------------------------------------

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _LazyLinesDoc(YamlDoc):
    """A document parsed as JSON: line numbers are only computed (by a YAML parse) when a problem needs one."""

    def __init__(self, file: str, data: Any, text: str) -> None:
        super().__init__(file=file, data=data)
        self._text: str | None = text

    def line_of(self, path: KeyPath) -> int | None:
        if self._text is not None:
            self.lines.update(parse_yaml(self._text, self.file).lines)
            self._text = None
        return super().line_of(path)


def _json_doc(text: str, file: str) -> YamlDoc | None:
    """JSON is YAML: parse it with the C json module; None when it is not plain JSON or repeats a key."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            raise ValueError("duplicate key")
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return None
    return _LazyLinesDoc(file, data, text)


def _build(node: yaml.Node, path: KeyPath, doc: YamlDoc, loader: Any, memo: dict[int, Any]) -> Any:
    """Construct the value of `node` and record the line of every key path in one pass."""
    doc.lines[path] = node.start_mark.line + 1
    if id(node) in memo:  # alias: reuse the constructed object (no billion-laughs blow-up)
        return memo[id(node)]
    if isinstance(node, yaml.ScalarNode):
        value = node.value if node.tag == _STR_TAG else loader.construct_object(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = []
        memo[id(node)] = value
        value.extend(_build(item, (*path, i), doc, loader, memo) for i, item in enumerate(node.value))
    elif isinstance(node, yaml.MappingNode):
        if any(k.tag == _MERGE_TAG for k, _ in node.value):
            value = loader.construct_object(node, deep=True)
            _walk(node, path, doc)
        else:
            value = {}
            memo[id(node)] = value
            for key_node, value_node in node.value:
                key = key_node.value if key_node.tag == _STR_TAG else loader.construct_object(key_node, deep=True)
                kpath = (*path, str(key))
                if key in value:
                    doc.duplicates.append(
                        Problem(file=doc.file, line=key_node.start_mark.line + 1, key=format_path(kpath), message="duplicate key")
                    )
                value[key] = _build(value_node, kpath, doc, loader, memo)
                doc.lines[kpath] = key_node.start_mark.line + 1
    else:  # pragma: no cover - PyYAML has no other node kinds
        value = loader.construct_object(node, deep=True)
    memo[id(node)] = value
    return value


def parse_yaml_fast(text: str, file: str) -> YamlDoc:
    """Like `parse_yaml`, for big inputs: JSON-looking files go through `json` (lines computed on demand),
    YAML is composed by libyaml and constructed and line-mapped in a single walk."""
    if text.lstrip()[:1] in ("[", "{"):
        doc = _json_doc(text, file)
        if doc is not None:
            return doc
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            doc = YamlDoc(file=file, data=None)
            if node is not None:
                doc.data = _build(node, (), doc, loader, {})
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise InvalidInputError([Problem(file=file, line=line, message=f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError([Problem(file=file, message=f"invalid YAML: {exc}")]) from exc
    return doc


def doc_from_data(file: str, data: Any, text: str) -> YamlDoc:
    """A document whose data is already known (e.g. from a cache); lines come from `text` only on demand."""
    return _LazyLinesDoc(file, data, text)
