"""Old-shape and new-shape writers run while expand + backfill run; afterwards both shapes agree on every row,
no write failed, no row was lost, and every written value survived on the side it was written to."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from migrate_assets.expand import runner
from tests.expand.conftest import change, make_items

ROWS = 20_000
MIN_OPS = 400  # per writer, after expand finished at least


@dataclass
class Scenario:
    yaml: str
    old_insert: str
    new_insert: str
    old_update: str
    new_update: str
    old_value: Callable[[int], Any]
    new_value: Callable[[int], Any]
    #: (written-by-old column, its value read back), (written-by-new column) — physical names during expand
    old_col: str
    new_col: str
    #: SQL returning the number of rows where the two shapes disagree (0 expected)
    disagree: str
    #: column holding the final value after contract, and how a value written on each side reads then
    final_col: str | None = None
    final_from_old: Callable[[Any], Any] = lambda v: v
    final_from_new: Callable[[Any], Any] = lambda v: v


OLD_INS = (
    "INSERT INTO items (id, email, amount, code, legacy, region) VALUES (%(id)s, 'o@x', 1, '1', 'l', NULL)"
)

SCENARIOS = {
    "rename_column": Scenario(
        yaml="table: items\noperations:\n  - rename_column: {from: email, to: email_address}\n",
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email_address, amount, code, legacy) VALUES (%(id)s, %(v)s, 1, '1', 'l')",
        old_update="UPDATE items SET email = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET email_address = %(v)s WHERE id = %(id)s",
        old_value=lambda i: f"old{i}@x",
        new_value=lambda i: f"new{i}@x",
        old_col="email",
        new_col="email_address",
        disagree="SELECT count(*) FROM items WHERE email IS DISTINCT FROM email_address",
        final_col="email_address",
    ),
    "change_type": Scenario(
        yaml="table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n",
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email, _ma_new_amount, code, legacy) VALUES (%(id)s, 'n@x', %(v)s, '1', 'l')",
        old_update="UPDATE items SET amount = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET _ma_new_amount = %(v)s WHERE id = %(id)s",
        old_value=lambda i: i,
        new_value=lambda i: 1_000_000 + i,
        old_col="amount",
        new_col="_ma_new_amount",
        disagree="SELECT count(*) FROM items WHERE amount::bigint IS DISTINCT FROM _ma_new_amount",
        final_col="amount",
    ),
    "change_type_expr": Scenario(
        yaml=(
            "table: items\noperations:\n  - change_type: {column: code, to_type: integer, "
            "up: \"nullif(code, '')::integer\", down: \"coalesce(code::text, '')\"}\n"
        ),
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email, _ma_new_code, legacy) VALUES (%(id)s, 'n@x', %(v)s, 'l')",
        old_update="UPDATE items SET code = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET _ma_new_code = %(v)s WHERE id = %(id)s",
        old_value=lambda i: "" if i % 5 == 0 else str(i),
        new_value=lambda i: i,
        old_col="code",
        new_col="_ma_new_code",
        disagree="SELECT count(*) FROM items WHERE nullif(code, '')::integer IS DISTINCT FROM _ma_new_code",
        final_col="code",
        final_from_old=lambda v: None if v == "" else int(v),
    ),
    "add_column": Scenario(
        yaml=(
            "table: items\noperations:\n  - add_column: {name: tier, type: text, "
            "backfill: \"'t' || (id % 3)\"}\n"
        ),
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email, code, legacy, tier) VALUES (%(id)s, 'n@x', '1', 'l', %(v)s)",
        old_update="UPDATE items SET note = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET tier = %(v)s WHERE id = %(id)s",
        old_value=lambda i: f"note{i}",
        new_value=lambda i: f"tier{i}",
        old_col="note",
        new_col="tier",
        disagree="SELECT count(*) FROM items WHERE tier IS NULL OR (id <= 20000 AND id % 4 <> 2 AND id % 4 <> 3 "
        "AND tier <> 't' || (id % 3))",
    ),
    "drop_column": Scenario(
        yaml="table: items\noperations:\n  - drop_column: {column: legacy}\n",
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email, code) VALUES (%(id)s, 'n@x', '1')",
        old_update="UPDATE items SET legacy = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET note = %(v)s WHERE id = %(id)s",
        old_value=lambda i: f"legacy{i}",
        new_value=lambda i: f"note{i}",
        old_col="legacy",
        new_col="note",
        disagree="SELECT 0",
    ),
    "set_not_null": Scenario(
        yaml=(
            "table: items\noperations:\n  - set_not_null: {column: region, "
            "backfill: \"coalesce(region, 'eu')\"}\n"
        ),
        old_insert=OLD_INS,
        new_insert="INSERT INTO items (id, email, code, legacy, region) VALUES (%(id)s, 'n@x', '1', 'l', 'de')",
        old_update="UPDATE items SET region = NULL, note = %(v)s WHERE id = %(id)s",
        new_update="UPDATE items SET region = %(v)s WHERE id = %(id)s",
        old_value=lambda i: f"note{i}",
        new_value=lambda i: f"r{i}",
        old_col="note",
        new_col="region",
        disagree="SELECT count(*) FROM items WHERE region IS NULL",
    ),
}


def _new_shape_ready(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('public.migrate_assets_operations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return False
    return bool(conn.execute("SELECT count(*) FROM migrate_assets_operations").fetchone() == (1,))


def _writer(
    dsn: str, s: Scenario, w: int, new_shape: bool, stop: threading.Event, out: dict[str, Any]
) -> None:
    """Writer `w` inserts ids w*1e6+k and updates pre-existing rows with id % 4 == w, alternately."""
    rnd = random.Random(w)
    inserted: list[int] = []
    last: dict[int, Any] = {}
    errors: list[str] = []
    ops = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if new_shape:
                deadline = time.monotonic() + 60
                while not _new_shape_ready(conn):
                    if time.monotonic() > deadline:
                        raise TimeoutError("expand DDL never committed")
                    time.sleep(0.005)
            ins, upd = (s.new_insert, s.new_update) if new_shape else (s.old_insert, s.old_update)
            value = s.new_value if new_shape else s.old_value
            k = 0
            while not stop.is_set():
                k += 1
                try:
                    if k % 2:
                        rid = (w + 1) * 1_000_000 + k
                        conn.execute(ins, {"id": rid, "v": value(k)})
                        inserted.append(rid)
                    else:
                        rid = rnd.randrange(1, ROWS // 4) * 4 + w
                        conn.execute(upd, {"id": rid, "v": value(k)})
                        last[rid] = value(k)
                except psycopg.Error as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                ops += 1
                out[f"ops{w}"] = ops
    except Exception as exc:  # surfaced by the test
        errors.append(f"{type(exc).__name__}: {exc}")
    out[w] = (inserted, last, errors, new_shape)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_concurrent_old_and_new_writers(fresh_dsn: str, name: str) -> None:
    s = SCENARIOS[name]
    make_items(fresh_dsn, ROWS)
    ch = change(s.yaml)
    stop = threading.Event()
    out: dict[Any, Any] = {}
    threads = [
        threading.Thread(target=_writer, args=(fresh_dsn, s, w, w >= 2, stop, out), daemon=True)
        for w in range(4)
    ]
    for t in threads:
        t.start()
    with psycopg.connect(fresh_dsn) as conn:
        result = runner.expand(conn, ch, runner.Options(batch_size=500, batch_delay=0.01))
    assert result["status"] == "expanded"
    deadline = time.monotonic() + 60
    while not all(out.get(f"ops{w}", 0) >= MIN_OPS for w in range(4)):
        assert time.monotonic() < deadline, f"writers too slow: {out}"
        assert all(t.is_alive() for t in threads), f"a writer died: {out}"
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(30)
    total_ops = sum(out[f"ops{w}"] for w in range(4))
    assert total_ops >= 4 * MIN_OPS
    errors = [e for w in range(4) for e in out[w][2]]
    assert errors == [], errors[:5]

    with psycopg.connect(fresh_dsn) as conn:
        inserted = [rid for w in range(4) for rid in out[w][0]]
        (count,) = conn.execute("SELECT count(*) FROM items").fetchone() or (0,)
        assert count == ROWS + len(inserted)
        assert conn.execute("SELECT count(*) FROM items WHERE id = ANY(%s)", (inserted,)).fetchone() == (
            len(inserted),
        )
        assert conn.execute(s.disagree).fetchone() == (0,)
        for w in range(4):
            _, last, _, new_shape = out[w]
            col = s.new_col if new_shape else s.old_col
            rows = dict(
                conn.execute(
                    sql.SQL("SELECT id, {} FROM items WHERE id = ANY(%s)").format(sql.Identifier(col)),
                    (list(last),),
                ).fetchall()
            )
            assert rows == last, f"writer {w} lost writes on {col}"
    st = runner.status(psycopg.connect(fresh_dsn), ch)
    assert st.mismatched_rows == 0 and st.rows_to_backfill == 0
    assert st.trigger_present == st.trigger_enabled
    assert st.safe_to_contract, st.reasons

    with psycopg.connect(fresh_dsn) as conn:
        assert runner.contract(conn, ch)["status"] == "contracted"
    if s.final_col:
        with psycopg.connect(fresh_dsn) as conn:
            for w in range(4):
                _, last, _, new_shape = out[w]
                conv = s.final_from_new if new_shape else s.final_from_old
                rows = dict(
                    conn.execute(
                        sql.SQL("SELECT id, {} FROM items WHERE id = ANY(%s)").format(
                            sql.Identifier(s.final_col)
                        ),
                        (list(last),),
                    ).fetchall()
                )
                assert rows == {k: conv(v) for k, v in last.items()}
