"""Specs stay true: after a command changed a table's columns (`evolve`, `contract`, `abort`), the spec file
that declares the table is edited to say what the database now holds, so `plan --check` stays clean.

The rule (docs/configuration.md, "Specs stay true"): only the columns the command changed are written — the
live table is read before and after, and each column whose name, type, nullability or default moved is made
the same in the spec; a column the command added is appended to the table's `columns:` in the style of the
entry before it, one it dropped is removed. Everything else in the file — comments, order, quoting, other
tables, spec edits not applied yet — stays byte for byte. The edit is planned on PyYAML's node marks (exact
spans of each value), applied as text, and checked by loading the result as a spec before the file is
replaced (atomically); a result that would not say what the database holds is not written, and the report
says why.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migrate_assets.config import ProjectConfig
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.expand.naming import is_helper
from migrate_assets.schema.model import Column, Table

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ().\[\]]*")


@dataclass
class WriteBack:
    """What happened to the spec of one table."""

    table: str
    file: str | None = None
    status: str = "unchanged"  # written | unchanged | not_declared | failed
    columns: list[str] = field(default_factory=list)  #: what was written, one line per column
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- the live table, before and after --------------------------------------------------------------------------


def live_table(cfg: ProjectConfig, table: str) -> Table | None:
    """The live table `schema.table` (None: not there, or the database cannot be read)."""
    from migrate_assets.resources.database import connect
    from migrate_assets.schema.introspect import introspect

    schema, _, name = table.partition(".")
    try:
        with connect(cfg, "migrate-assets", read_only=True) as conn:
            return introspect(conn, [schema], [(schema, name)]).get((schema, name))
    except Exception:  # noqa: BLE001 - the write-back then reports the table as unreadable
        return None


def renames_of(change: Any) -> dict[str, str]:
    """{old: new} of the change's rename_column operations (chained renames collapse)."""
    out: dict[str, str] = {}
    for op in getattr(change, "operations", ()):
        if getattr(op, "kind", "") == "rename_column":
            old = next((k for k, v in out.items() if v == op.from_), op.from_)
            out[old] = op.to
    return out


def write_back(cfg: ProjectConfig, table: str, before: Table | None,
               renames: Mapping[str, str] | None = None) -> WriteBack:
    """Make the spec of `table` say what the command changed between `before` and now (see the module)."""
    from migrate_assets.resources import database

    out = WriteBack(table)
    try:
        spec = next((t for t in database.specs(cfg, missing_ok=True) if t.qualified == table), None)
    except Exception as exc:  # noqa: BLE001 - a spec set that does not load is not ours to fix here
        out.status, out.error = "failed", f"the spec files do not load: {exc}"
        return out
    if spec is None or spec.source is None:
        out.status = "not_declared"
        return out
    out.file = spec.source.file
    after = live_table(cfg, table)
    if before is None or after is None:
        out.status, out.error = "failed", f"cannot read {table} from the database"
        return out
    edits = column_edits(spec, before, after, renames or {})
    if not edits:
        return out
    path = Path(spec.source.file)
    try:
        text = path.read_text(encoding="utf-8")
        new = apply_edits(text, spec.source.path, edits)
        check(new, str(path), spec, edits, cfg.database.schema_)
    except (ValueError, yaml.YAMLError, OSError, MigrateAssetsError) as exc:
        out.status, out.error = "failed", str(exc)
        return out
    _replace(path, new)
    out.status = "written"
    out.columns = [e.describe() for e in edits]
    return out


def after_command(cfg: ProjectConfig, change: Any, before: Table | None, succeeded: bool) -> dict[str, Any] | None:
    """For `evolve`, `contract` and `abort`: once the command succeeded, write the table's spec back (see the
    module); the report's `spec` entry, or None when nothing ran (failed, dry run: `before` is None)."""
    if not succeeded or before is None:
        return None
    return write_back(cfg, change.qualified, before, renames_of(change)).to_dict()


def touched_by(operations: Sequence[Mapping[str, Any]]) -> tuple[set[str], set[str], dict[str, str]]:
    """What a stored plan's operations (their change-file form, `{kind: {key: value}}`) did to the columns:
    (the live names they added or changed, the names they dropped as the spec declares them, {old: new} of
    their renames)."""
    touched: set[str] = set()
    dropped: set[str] = set()
    renames: dict[str, str] = {}
    for op in operations:
        ((kind, body),) = op.items()
        if kind == "rename_column":
            old, new = body["from"], body["to"]
            first = next((k for k, v in renames.items() if v == old), old)
            renames[first] = new
            touched.discard(old)
            touched.add(new)
        elif kind == "drop_column":
            name = body["column"]
            first = next((k for k, v in renames.items() if v == name), name)
            renames.pop(first, None)
            touched.discard(name)
            dropped.add(first)
        elif kind == "add_column":
            touched.add(body["name"])
        elif isinstance(body, Mapping) and isinstance(body.get("column"), str):
            touched.add(body["column"])
    return touched, dropped, renames


def after_resume(cfg: ProjectConfig, plan: Mapping[str, Any], succeeded: bool) -> dict[str, Any] | None:
    """For `evolve --resume RUN`: once the resumed run succeeded, write its change back like a plain evolve.
    The table as it was before the run is gone (an earlier process may have run the DDL), so the run's stored
    operations say which columns it changed: each of them is made the same in the spec as it is now, each it
    dropped is removed. None when nothing is written (not succeeded, a plan without column operations)."""
    operations = plan.get("operations") or []
    if not succeeded or not operations:
        return None
    table = str(plan["table"])
    try:
        touched, dropped, renames = touched_by(operations)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # a stored form this reading does not know
        return WriteBack(table, status="failed", error=f"the run's operations cannot be read: {exc}").to_dict()
    if not touched and not dropped:  # a new table, a join or an onboarding: the spec already said it
        return None
    after = live_table(cfg, table)
    if after is None:
        return WriteBack(table, status="failed", error=f"cannot read {table} from the database").to_dict()
    live = {c.name for c in after.columns}
    gone = tuple(Column(n, after.columns[0].type, True) for n in sorted(dropped - live) if after.columns)
    before = replace(after, columns=tuple(c for c in after.columns if c.name not in touched) + gone)
    return write_back(cfg, table, before, renames).to_dict()


def warnings_of(spec: dict[str, Any] | None) -> list[str]:
    """A write-back that failed, as a warning line (the command itself succeeded)."""
    if not spec or spec["status"] != "failed":
        return []
    return [f"the spec of {spec['table']} was not updated ({spec['error']}): edit {spec['file'] or 'it'} so "
            "that `plan --check` is clean again"]


# -- what to write -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One column of the spec made equal to the database: `spec_name` None adds it, `column` None drops it."""

    spec_name: str | None
    column: Column | None

    def describe(self) -> str:
        if self.column is None:
            return f"removed column {self.spec_name} (dropped in the database)"
        fields = ", ".join(f"{k}: {v}" for k, v in column_fields(self.column).items() if k != "name")
        if self.spec_name is None:
            return f"added column {self.column.name} ({fields})"
        was = f" (was {self.spec_name})" if self.spec_name != self.column.name else ""
        return f"column {self.column.name}{was}: {fields}"


def column_fields(c: Column) -> dict[str, Any]:
    """The spec keys of a live column (nullable: false is the spec's default and is still written)."""
    type_text = ({"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}.get(c.type.name)
                 if c.serial and not c.type.array_dims else None) or c.type.render()
    out: dict[str, Any] = {"name": c.name, "type": type_text, "nullable": c.nullable}
    if c.default is not None and not c.serial:
        out["default"] = c.default
    return out


def _same(spec: Column, live: Column) -> bool:
    return (spec.name, spec.type.plain, spec.nullable, spec.serial) == (live.name, live.type.plain, live.nullable,
                                                                        live.serial) \
        and (spec.default == live.default or live.serial)


def column_edits(spec: Table, before: Table, after: Table, renames: Mapping[str, str]) -> list[Edit]:
    """Edits for the columns that changed between `before` and `after` and that the spec does not already say."""
    back = {new: old for old, new in renames.items()}
    was = {c.name: c for c in before.columns}
    now = {c.name: c for c in after.columns}
    edits: list[Edit] = []
    for c in after.columns:
        if is_helper(c.name):
            continue
        old_name = back.get(c.name, c.name)
        prev = was.get(old_name)
        if prev is not None and prev == c and old_name == c.name:
            continue  # untouched by the command
        declared = spec.column(c.name) or spec.column(old_name)
        if declared is not None and _same(declared, c):
            continue
        edits.append(Edit(declared.name if declared else None, c))
    renamed_away = set(renames)
    for c in before.columns:
        if c.name not in now and c.name not in renamed_away and not is_helper(c.name) and spec.column(c.name):
            edits.append(Edit(c.name, None))
    return edits


# -- text edits on node marks ------------------------------------------------------------------------------------


def _scalar(value: Any, flow: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _PLAIN.fullmatch(text) and text == text.strip() and yaml.safe_load(text) == text:
        return text  # plain: reads back as this very string
    return json.dumps(text, ensure_ascii=False)  # a YAML double-quoted scalar


def _get(node: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _table_node(root: Node, key: tuple[Any, ...]) -> MappingNode:
    node = root
    for part in key:
        if isinstance(part, int) and isinstance(node, SequenceNode):
            node = node.value[part]
        elif isinstance(node, MappingNode) and (kv := _get(node, str(part))) is not None:
            node = kv[1]
        else:
            raise ValueError(f"cannot find the table at {key!r}")
    if not isinstance(node, MappingNode):
        raise ValueError("the table is not a mapping")
    return node


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """The index just past the newline of the line holding `index - 1` (the end of a node's last line)."""
    nl = text.find("\n", max(index - 1, 0))
    return len(text) if nl < 0 else nl + 1


def _content_end(node: Node) -> int:
    """Where the node's text ends (a block mapping's end mark may sit at the start of the next token)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return node.end_mark.index


def _entry_text(fields: Mapping[str, Any], flow: bool, dash_indent: str, key_indent: str) -> str:
    if flow:
        body = ", ".join(f"{k}: {_scalar(v, True)}" for k, v in fields.items())
        return f"{dash_indent}- {{{body}}}\n"
    lines = [f"{k}: {_scalar(v, False)}" for k, v in fields.items()]
    return f"{dash_indent}- {lines[0]}\n" + "".join(f"{key_indent}{line}\n" for line in lines[1:])


def apply_edits(text: str, table_key: tuple[Any, ...], edits: Sequence[Edit]) -> str:
    """`text` with `edits` made to the columns of the table at `table_key` (the spec's key path)."""
    root = yaml.compose(text)
    if root is None:
        raise ValueError("the spec file is empty")
    table = _table_node(root, tuple(table_key))
    cols_kv = _get(table, "columns")
    if cols_kv is None or not isinstance(cols_kv[1], SequenceNode) or not cols_kv[1].value:
        raise ValueError("the table has no columns list to edit")
    seq: SequenceNode = cols_kv[1]
    items: dict[str, MappingNode] = {}
    for item in seq.value:
        if isinstance(item, MappingNode) and (kv := _get(item, "name")) is not None:
            items[str(kv[1].value)] = item  # type: ignore[union-attr]
    spans: list[tuple[int, int, str]] = []  # (start, end, replacement) on the original text
    for e in edits:
        if e.spec_name is None:
            assert e.column is not None
            spans.append(_add(text, seq, column_fields(e.column)))
        elif e.column is None:
            spans.append(_drop(text, seq, items[e.spec_name]))
        else:
            spans += _set(text, items[e.spec_name], column_fields(e.column))
            if e.spec_name != e.column.name:
                spans += _renamed_refs(table, e.spec_name, e.column.name)
    for start, end, new in sorted(spans, key=lambda s: (s[0], s[1]), reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _renamed_refs(table: MappingNode, old: str, new: str) -> list[tuple[int, int, str]]:
    """The table's `primary_key` list and its indexes' `columns` name columns too: a rename reaches them
    (Postgres renames the column inside its indexes and constraints)."""
    lists: list[Node] = []
    if (pk := _get(table, "primary_key")) is not None:
        lists.append(pk[1])
    if (ix := _get(table, "indexes")) is not None and isinstance(ix[1], SequenceNode):
        lists += [kv[1] for i in ix[1].value if isinstance(i, MappingNode) and (kv := _get(i, "columns"))]
    return [(n.start_mark.index, n.end_mark.index, _scalar(new, True))
            for seq in lists if isinstance(seq, SequenceNode)
            for n in seq.value if isinstance(n, ScalarNode) and n.value == old]


def _add(text: str, seq: SequenceNode, fields: Mapping[str, Any]) -> tuple[int, int, str]:
    if seq.flow_style:  # columns: [{...}, {...}]
        at = seq.end_mark.index - 1
        body = ", ".join(f"{k}: {_scalar(v, True)}" for k, v in fields.items())
        return at, at, f", {{{body}}}"
    last = seq.value[-1]
    line = text[_line_start(text, last.start_mark.index):last.start_mark.index]
    dash_indent = " " * (len(line) - len(line.lstrip()))
    key_indent = " " * last.start_mark.column
    at = _line_end(text, _content_end(last))
    prefix = "" if text[:at].endswith("\n") else "\n"
    return at, at, prefix + _entry_text(fields, bool(last.flow_style), dash_indent, key_indent)


def _drop(text: str, seq: SequenceNode, item: MappingNode) -> tuple[int, int, str]:
    if seq.flow_style:
        raise ValueError("dropping a column from a flow-style columns list is not written back")
    return _line_start(text, item.start_mark.index), _line_end(text, _content_end(item)), ""


def _set(text: str, item: MappingNode, fields: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    flow = bool(item.flow_style)
    spans: list[tuple[int, int, str]] = []
    missing: list[str] = []
    for key, value in fields.items():
        kv = _get(item, key)
        if kv is None:
            if not (key == "nullable" and value is False):  # false is the spec's default: no need to add it
                missing.append(f"{key}: {_scalar(value, flow)}")
            continue
        node = kv[1]
        if isinstance(node, ScalarNode) and yaml.safe_load(text[node.start_mark.index:node.end_mark.index]) == value:
            continue
        spans.append((node.start_mark.index, node.end_mark.index, _scalar(value, flow)))
    if "default" not in fields and (kv := _get(item, "default")) is not None:  # the default is gone
        k, v = kv
        if flow:
            start = text.rfind(",", 0, k.start_mark.index)
            spans.append((start, v.end_mark.index, ""))
        else:
            spans.append((_line_start(text, k.start_mark.index), _line_end(text, v.end_mark.index), ""))
    if missing:
        if flow:
            at = item.end_mark.index - 1
            while text[at - 1] == " ":
                at -= 1
            spans.append((at, at, "".join(f", {m}" for m in missing)))
        else:
            at = _line_end(text, _content_end(item))
            indent = " " * item.start_mark.column
            spans.append((at, at, "".join(f"{indent}{m}\n" for m in missing)))
    return spans


def check(new: str, file: str, spec: Table, edits: Sequence[Edit], default_schema: str) -> None:
    """The edited file loads as a spec and says, for every edited column, what the database holds."""
    from migrate_assets.schema.spec import parse_spec_text

    tables = {t.qualified: t for t in parse_spec_text(new, file, default_schema)}
    got = tables.get(spec.qualified)
    if got is None:
        raise ValueError(f"the edited file no longer declares {spec.qualified}")
    for e in edits:
        if e.column is None:
            if e.spec_name and got.column(e.spec_name) is not None:
                raise ValueError(f"column {e.spec_name} is still declared after the edit")
            continue
        declared = got.column(e.column.name)
        if declared is None or not _same(declared, e.column):
            raise ValueError(f"the edit does not declare column {e.column.name} as the database has it")


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, keeping the file's mode."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
