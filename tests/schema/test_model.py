"""The model's classes keep their fields in slots (no per-object `__dict__`: a 10,000-table plan holds a quarter
of a million columns), and still behave as the plain frozen dataclasses they were."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate_assets.schema import model
from migrate_assets.schema.model import (
    Check,
    Column,
    Constraint,
    ForeignKey,
    Index,
    Source,
    Table,
    positional_constructor,
)
from migrate_assets.schema.types import parse_type


def table() -> Table:
    cols = (Column("id", parse_type("int")), Column("b", parse_type("text"), nullable=True, source=Source("f.yaml", 3)))
    return Table("public", "t", cols, Constraint("t_pkey", ("id",)), indexes=(Index("t_b_idx", ("b",)),),
                 foreign_keys=(ForeignKey("t_fk", ("id",), "public", "u", ("id",)),), checks=(Check("c", "b <> ''"),))


def test_model_objects_have_no_dict() -> None:
    for cls in (Table, Column, Index, Constraint, ForeignKey, Check, Source):
        assert "__slots__" in cls.__dict__, cls
    t = table()
    assert not hasattr(t, "__dict__") and not hasattr(t.columns[0], "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "u"  # type: ignore[misc]


def test_a_table_finds_its_columns_by_name_and_forgets_the_index_when_replaced() -> None:
    t = table()
    assert t.column("b") is t.columns[1] and t.column("nope") is None
    u = dataclasses.replace(t, columns=t.columns[:1])
    assert u.column("b") is None and u.column("id") is t.columns[0]
    assert t == dataclasses.replace(t) and hash(t) == hash(dataclasses.replace(t))
    assert "_by_name" not in repr(t) and "_by_name" not in [f.name for f in dataclasses.fields(Table)]


def test_tables_pickle_with_their_slots() -> None:
    t = table()
    t.column("id")
    again = pickle.loads(pickle.dumps(t))
    assert again == t and again.columns[1].source == Source("f.yaml", 3) and again.column("b") == t.columns[1]


def test_the_positional_constructor_builds_what_the_class_builds() -> None:
    new_column = positional_constructor(Column)
    values = ("a", parse_type("int"), True, "0", False, None, None, "note", ("old",), "C", None, None,
              Source("f.yaml", None, (0, "columns", 0)))
    built = new_column(*values)
    assert type(built) is Column and built == Column(*values)  # type: ignore[arg-type]
    assert [getattr(built, f.name) for f in dataclasses.fields(Column)] == list(values)
    with pytest.raises(TypeError):
        positional_constructor(model.Named)  # type: ignore[type-abstract]  # no dataclass
    with pytest.raises(TypeError):
        positional_constructor(dataclasses.make_dataclass("WithInitFalse", [("a", int, dataclasses.field(init=False))],
                                                          slots=True))


def _object_name_by_cutting(name1: str, name2: str | None, label: str | None) -> str:
    """makeObjectName's loop, always run (what `object_name` does when a part must be cut)."""
    return model._cut_object_name(name1, name2, label)


@settings(max_examples=500, deadline=None)
@given(name1=st.text(alphabet="ab_é", max_size=70), name2=st.none() | st.text(alphabet="cd_é", max_size=70),
       label=st.sampled_from([None, "", "pkey", "key", "idx", "fkey"]))
def test_generated_names_join_directly_only_when_nothing_is_cut(name1: str, name2: str | None, label: str | None) -> None:
    assert model.object_name(name1, name2, label) == _object_name_by_cutting(name1, name2, label)
