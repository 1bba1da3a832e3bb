"""The planner skips tables `in_sync` says are unchanged, so it must never say so when `diff` would plan
something; and the fingerprint's shared-column shortcut must hash exactly `repr(table_fingerprint_data)`."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from migrate_assets.schema.diff import diff, in_sync
from migrate_assets.schema.model import (
    Column,
    Constraint,
    Index,
    Table,
    _fingerprint_text,
    table_fingerprint_data,
)
from migrate_assets.schema.types import PgType

INT, TEXT = PgType("integer"), PgType("text")


def _table(*columns: Column, **kw: object) -> Table:
    return Table("public", "t", columns, **kw)  # type: ignore[arg-type]


def _plans_nothing(want: Table, have: Table) -> bool:
    res = diff([want], {want.key: have}, nonempty=set())
    return not res.changes and not res.refusals


@st.composite
def _pair(draw: st.DrawFn) -> tuple[Table, Table]:
    """A desired table and a live one that is equal or differs in one small way."""
    cols = []
    for name in draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["plain", "serial", "identity"]))
        cols.append(
            Column(
                name,
                INT if kind != "plain" else draw(st.sampled_from([INT, TEXT])),
                nullable=draw(st.booleans()),
                default=draw(st.sampled_from([None, "0", "(0)"])) if kind != "serial" else None,
                serial=kind == "serial",
                identity="always" if kind == "identity" else None,
                comment=draw(st.sampled_from([None, "", "c"])),
            )
        )
    first = cols[0].name
    want = _table(
        *cols,
        primary_key=draw(st.sampled_from([None, Constraint(None, (first,))])),
        uniques=draw(st.sampled_from([(), (Constraint(None, (first,)),)])),
        indexes=draw(st.sampled_from([(), (Index("ix", (first,), where=draw(st.sampled_from([None, "a > 0", "(a > 0)"]))),)])),
        comment=draw(st.sampled_from([None, "", "t"])),
    )
    have = draw(
        st.sampled_from(
            [
                want,
                replace(want, columns=tuple(reversed(want.columns))),
                replace(want, columns=(replace(cols[0], nullable=not cols[0].nullable), *cols[1:])),
                replace(want, columns=(replace(cols[0], default="1"), *cols[1:])),
                replace(want, primary_key=Constraint("t_pkey", (first,))),
                replace(want, uniques=()),
                replace(want, indexes=tuple(replace(i, where="(a > 0)") for i in want.indexes)),
                replace(want, indexes=tuple(replace(i, where="a >= 0") for i in want.indexes)),
                replace(want, indexes=tuple(replace(i, where=None) for i in want.indexes)),
                replace(want, indexes=tuple(replace(i, name="other") for i in want.indexes)),
                replace(want, comment="other"),
            ]
        )
    )
    return want, have


@settings(max_examples=400, deadline=None)
@given(pair=_pair())
def test_in_sync_only_when_diff_plans_nothing(pair: tuple[Table, Table]) -> None:
    want, have = pair
    if in_sync(want, have):
        assert _plans_nothing(want, have)


def test_equal_columns_that_still_plan_something_are_not_in_sync() -> None:
    nullable_serial = Column("id", INT, nullable=True, serial=True)
    identity_default = Column("id", INT, identity="always", default="1")
    for col in (nullable_serial, identity_default):
        t = _table(col)
        assert not in_sync(t, t) and not _plans_nothing(t, t)
    t = _table(Column("id", INT, nullable=False, serial=True), primary_key=Constraint(None, ("id",)))
    assert in_sync(t, replace(t, primary_key=Constraint("t_pkey", ("id",))))
    assert not in_sync(t, None)


def test_fingerprint_text_is_the_repr_of_the_fingerprint_data() -> None:
    shared = Column("it's", TEXT, default="'x'::text", comment='say "hi"')
    tables = [
        _table(),
        _table(shared),
        _table(shared, Column("n", INT, identity="by default"), primary_key=Constraint("pk", ("n",)),
               uniques=(Constraint(None, ("it's",)),), indexes=(Index("i", ("n",), where="(n > 0)"),), comment="c"),
    ]  # fmt: skip
    reprs: dict[int, str] = {}
    for t in tables:
        assert _fingerprint_text(t, reprs) == repr(table_fingerprint_data(t))
