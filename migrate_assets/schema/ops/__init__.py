"""Schema operations: one class per operation, one module each (pgroll's `op_*.go` files are the model).

An operation is immutable data — the body a user writes in a change file, plus internal fields the
declarative diff fills in (`repr=False`, never serialised). Each operation class owns, side by side:

* `check(table)`        — validation against the table as it is now (a list of `Problem(key, message)`);
                          `check_written()` what its own fields say before any table is read,
                          `check_expand(...)` expand's limits, `declared_type()` the type it declares,
                          `expressions(table)` / `check_expressions(table, checks)` its SQL expressions, which
                          `expand.validate` has Postgres check — so no validator switches on operation types;
* `plain(table)`        — one-transaction DDL as a `Ddl`: forward statements, inverse statements (None: none),
                          an explicit `lossless` flag (False when values are lost, even if the shape comes
                          back), what breaks readers and the hazards. `Refused` when it cannot be planned;
* `describe(table)`     — the sentence a plan shows; `phase` orders it within a table's declarative plan;
* `expand(builder)`     — expand steps (each with its abort inverse) and contract steps, through the
                          `ExpandBuilder` protocol the expand planner implements;
* `effects(sink)`       — what it does to the table's shape, told to a `ShapeSink`: the Avro and Iceberg
                          derivations, the expand planner's new shape and the connector's column filter are
                          sinks, so no layer switches on operation types;
* `inverse(table)`      — the operation that undoes it, or None (then it is irreversible).

Every SQL statement comes from `migrate_assets.schema.ddl` (quoted names, the guarded NOT NULL, the type
change); no operation formats `ALTER TABLE` itself. Adding an operation — a constraint, an enum value, an
identity, a partition, a view — is one new module here with its class (registered by `kind` when the class is
defined), its import below and its tests; a kind it does not support (e.g. `expand` for a view) keeps the
base method, which refuses with a clear message, and `expandable` says whether change files may use it.
"""

from __future__ import annotations

from typing import Any

from migrate_assets.schema.ops.add_check import AddCheck
from migrate_assets.schema.ops.add_column import AddColumn
from migrate_assets.schema.ops.add_enum_value import AddEnumValue
from migrate_assets.schema.ops.add_exclude import AddExclude
from migrate_assets.schema.ops.add_foreign_key import AddForeignKey
from migrate_assets.schema.ops.add_key import AddKey
from migrate_assets.schema.ops.attach_partition import AttachPartition
from migrate_assets.schema.ops.base import (
    REGISTRY,
    Ddl,
    ExpandBuilder,
    Operation,
    Problem,
    Refused,
    ShapeSink,
)
from migrate_assets.schema.ops.change_type import ChangeType
from migrate_assets.schema.ops.comment_column import CommentColumn
from migrate_assets.schema.ops.composite_ops import (
    AddAttribute,
    AlterAttribute,
    CreateComposite,
    DropAttribute,
)
from migrate_assets.schema.ops.create_enum import CreateEnum
from migrate_assets.schema.ops.create_extension import CreateExtension, MoveExtension, UpdateExtension
from migrate_assets.schema.ops.create_view import AlterView, CreateView, DropView, ReplaceView
from migrate_assets.schema.ops.detach_partition import DetachPartition
from migrate_assets.schema.ops.domain_ops import (
    AddDomainCheck,
    CreateDomain,
    DomainNotNull,
    DropDomainCheck,
    SetDomainDefault,
    ValidateDomainCheck,
)
from migrate_assets.schema.ops.drop_column import DropColumn
from migrate_assets.schema.ops.drop_constraint import DropConstraint
from migrate_assets.schema.ops.drop_not_null import DropNotNull
from migrate_assets.schema.ops.rename_column import RenameColumn
from migrate_assets.schema.ops.rename_enum_value import RenameEnumValue
from migrate_assets.schema.ops.sequence_ops import AlterSequence, CreateSequence, SequenceOwnedBy
from migrate_assets.schema.ops.set_collation import SetCollation
from migrate_assets.schema.ops.set_default import DropDefault, SetDefault
from migrate_assets.schema.ops.set_identity import SetIdentity
from migrate_assets.schema.ops.set_identity_options import SetIdentityOptions
from migrate_assets.schema.ops.set_not_null import SetNotNull
from migrate_assets.schema.ops.validate_constraint import ValidateConstraint

__all__ = [
    "REGISTRY", "AddCheck", "AddExclude", "AddEnumValue", "CreateEnum", "RenameEnumValue", "AddColumn", "AddForeignKey", "AddKey", "DropConstraint", "ValidateConstraint", "ChangeType", "CommentColumn", "Ddl", "DropColumn", "DropDefault", "DropNotNull",
    "ExpandBuilder", "Operation", "Problem", "Refused", "RenameColumn", "SetCollation", "SetDefault", "SetIdentity", "SetIdentityOptions", "SetNotNull",
    "ShapeSink", "op_from_dict", "op_to_dict",
    "AttachPartition", "DetachPartition", "CreateSequence", "AlterSequence", "SequenceOwnedBy",
    "CreateView", "ReplaceView", "DropView", "AlterView", "CreateExtension", "UpdateExtension", "MoveExtension",
    "CreateDomain", "SetDomainDefault", "DomainNotNull", "AddDomainCheck", "ValidateDomainCheck", "DropDomainCheck",
    "CreateComposite", "AddAttribute", "DropAttribute", "AlterAttribute",
]  # fmt: skip


def op_to_dict(op: Operation) -> dict[str, Any]:
    return op.to_dict()


def op_from_dict(data: dict[str, Any]) -> Operation:
    """Inverse of `op_to_dict`, for operations stored in the state table or a run record (already validated)."""
    ((kind, body),) = data.items()
    cls = REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"unknown operation {kind!r}")
    return cls(**{("from_" if k == "from" else k): v for k, v in body.items()})
