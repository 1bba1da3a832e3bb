"""Loading and validating change files (SPEC §5).

Structure is checked here, without a database: strict keys, types, required keys, identifier limits, one
operation per column. Every problem is reported at once with file, line and key path. What only the live table
can tell (does the column exist, does the expression compile) is checked by `validate.py` against Postgres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrate_assets.errors import ChangeFileError, Problem
from migrate_assets.expand.ops import (
    AddColumn,
    ChangeSet,
    ChangeType,
    DropColumn,
    Operation,
    RenameColumn,
    SetNotNull,
    op_columns,
)
from migrate_assets.schema.ops.add_enum_value import AddEnumValue
from migrate_assets.schema.ops.base import shape_of
from migrate_assets.schema.spec import ident_problem
from migrate_assets.schema.yamlsrc import KeyPath, YamlDoc, load_yaml, parse_yaml

#: per operation: key → (python field, expected type, required)
_SCHEMAS: dict[str, dict[str, tuple[str, type, bool]]] = {
    "add_column": {
        "name": ("name", str, True),
        "type": ("type", str, True),
        "nullable": ("nullable", bool, False),
        "default": ("default", str, False),
        "backfill": ("backfill", str, False),
    },
    "rename_column": {"from": ("from_", str, True), "to": ("to", str, True)},
    "change_type": {
        "column": ("column", str, True),
        "to_type": ("to_type", str, True),
        "up": ("up", str, False),
        "down": ("down", str, False),
    },
    "drop_column": {"column": ("column", str, True)},
    "set_not_null": {"column": ("column", str, True), "backfill": ("backfill", str, False)},
    "add_enum_value": {
        "type": ("type", str, True),
        "value": ("value", str, True),
        "before": ("before", str, False),
        "after": ("after", str, False),
    },
}
_CLASSES: dict[str, type] = {
    "add_column": AddColumn,
    "rename_column": RenameColumn,
    "change_type": ChangeType,
    "drop_column": DropColumn,
    "set_not_null": SetNotNull,
    "add_enum_value": AddEnumValue,
}
_IDENT_KEYS = {"name", "from", "to", "column"}
_EXPR_KEYS = {"default", "backfill", "up", "down"}
def _type_name(t: type) -> str:
    return {str: "a string", bool: "true or false"}.get(t, t.__name__)


def _parse_table(value: Any, default_schema: str) -> tuple[str, str] | str:
    if not isinstance(value, str):
        return "expected a table name such as public.accounts"
    parts = value.split(".")
    if len(parts) == 1:
        schema, table = default_schema, parts[0]
    elif len(parts) == 2:
        schema, table = parts
    else:
        return "expected `table` or `schema.table`"
    for part in (schema, table):
        msg = ident_problem(part)
        if msg:
            return msg
    return schema, table


def _parse_op(
    item: Any, path: KeyPath, doc: YamlDoc, problems: list[Problem]
) -> tuple[Operation, KeyPath] | None:
    if not isinstance(item, dict) or len(item) != 1:
        problems.append(doc.problem(path, "expected a mapping with exactly one key: " + ", ".join(_SCHEMAS)))
        return None
    ((kind, body),) = item.items()
    kind = str(kind)
    if kind not in _SCHEMAS:
        problems.append(
            doc.problem((*path, kind), f"unknown operation; expected one of {', '.join(_SCHEMAS)}")
        )
        return None
    opath: KeyPath = (*path, kind)
    if not isinstance(body, dict):
        problems.append(doc.problem(opath, "expected a mapping of the operation's settings"))
        return None
    schema = _SCHEMAS[kind]
    before = len(problems)
    fields: dict[str, Any] = {}
    for key, value in body.items():
        key = str(key)
        if key not in schema:
            problems.append(doc.problem((*opath, key), f"unknown key; expected {', '.join(schema)}"))
            continue
        field, expected, _ = schema[key]
        if key in _EXPR_KEYS and isinstance(value, bool):  # `default: true` means the SQL literal
            value = "true" if value else "false"
        elif key in _EXPR_KEYS and isinstance(value, int | float):  # `default: 0`
            value = str(value)
        if not isinstance(value, expected):
            problems.append(doc.problem((*opath, key), f"expected {_type_name(expected)}, got {value!r}"))
            continue
        if key in _IDENT_KEYS and isinstance(value, str):
            msg = ident_problem(value)
            if msg:
                problems.append(doc.problem((*opath, key), msg))
                continue
        if key in _EXPR_KEYS or key == "type" or key == "to_type":
            if isinstance(value, str) and not value.strip():
                problems.append(doc.problem((*opath, key), "must not be empty"))
                continue
        fields[field] = value
    for key, (_, _, required) in schema.items():
        if required and key not in body:
            problems.append(doc.problem((*opath, key), "required key is missing"))
    if len(problems) != before:
        return None
    op: Operation = _CLASSES[kind](**fields)
    written = op.check_written()
    problems.extend(doc.problem((*opath, p.key), p.message) for p in written)
    return None if written else (op, opath)


def change_set_from_doc(doc: YamlDoc, default_schema: str = "public") -> ChangeSet:
    """Validate a parsed change file; raise ChangeFileError listing every problem."""
    problems: list[Problem] = list(doc.duplicates)
    data = doc.data
    if not isinstance(data, dict):
        raise ChangeFileError([doc.problem((), "expected a mapping with keys `table` and `operations`")])
    for key in data:
        if key not in ("table", "operations"):
            problems.append(doc.problem((str(key),), "unknown key; expected table, operations"))
    table: tuple[str, str] | None = None
    if "table" not in data:
        problems.append(doc.problem(("table",), "required key is missing"))
    else:
        parsed = _parse_table(data["table"], default_schema)
        if isinstance(parsed, str):
            problems.append(doc.problem(("table",), parsed))
        else:
            table = parsed
    ops: list[Operation] = []
    locs: list[KeyPath] = []
    raw_ops = data.get("operations")
    if "operations" not in data:
        problems.append(doc.problem(("operations",), "required key is missing"))
    elif not isinstance(raw_ops, list) or not raw_ops:
        problems.append(doc.problem(("operations",), "expected a non-empty list of operations"))
    else:
        for i, item in enumerate(raw_ops):
            got = _parse_op(item, ("operations", i), doc, problems)
            if got:
                ops.append(got[0])
                locs.append(got[1])
    # one operation per column, and no two operations creating the same name
    touched: dict[str, int] = {}
    created: dict[str, int] = {}
    for i, op in enumerate(ops):
        for col in op_columns(op):
            if col in touched:
                problems.append(
                    doc.problem(
                        locs[i],
                        f"column {col!r} is already changed by operation {touched[col]}; "
                        "use one operation per column per change file",
                    )
                )
            touched[col] = i
        for new in shape_of(op).new_names:
            if new in created or new in touched:
                problems.append(doc.problem(locs[i], f"column name {new!r} is used by another operation"))
            created[new] = i
    for col, i in touched.items():
        if col in created and created[col] != i:
            problems.append(doc.problem(locs[i], f"column {col!r} is also created by another operation"))
    kinds = {op.changes_type for op in ops}
    if len(kinds) > 1:  # a type change runs its own saga (registry labels, ALTER TYPE, connector restart)
        first = next(i for i, op in enumerate(ops) if op.changes_type)
        problems.append(doc.problem(locs[first], f"{ops[first].kind} changes a type, not the table's columns: "
                                    "put it in a change file of its own"))
    if problems or table is None:
        raise ChangeFileError(problems)
    return ChangeSet(
        schema=table[0],
        table=table[1],
        operations=tuple(ops),
        source=doc.file,
        locations=tuple(locs),
        lines=tuple(doc.lines.items()),
    )


def load_change_file(path: str | Path, default_schema: str = "public") -> ChangeSet:
    """Read and validate a change file (ChangeFileError, exit 2, on any problem)."""
    try:
        doc = load_yaml(path)
    except ChangeFileError:
        raise
    except Exception as exc:  # InvalidInputError from yamlsrc: re-raise as the change-file flavour
        problems = getattr(exc, "problems", None)
        if problems is None:
            raise
        raise ChangeFileError(problems) from exc
    return change_set_from_doc(doc, default_schema)


def parse_change_text(text: str, file: str = "<text>", default_schema: str = "public") -> ChangeSet:
    """Same as `load_change_file` for text already in memory (tests, the evolution engine)."""
    try:
        doc = parse_yaml(text, file)
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems is None:
            raise
        raise ChangeFileError(problems) from exc
    return change_set_from_doc(doc, default_schema)
