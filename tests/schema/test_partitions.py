"""Partitioned tables on a real database: the online attach takes the locks its hazards say and Postgres skips its
scans (the CHECKs prove the bound); detach keeps the rows and drops only on `drop: true`; key changes are refused;
indexes and keys reach every partition online; bad bounds are exit 2 naming file, line and key, nothing changed."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import BreakingChangeBlocked, SpecError
from migrate_assets.schema.partitions import parse_bound
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import apply, converge, execute, plan, scalar

RANGE_DB = """
CREATE TABLE m (id bigint NOT NULL, taken date NOT NULL, v numeric, CONSTRAINT m_pkey PRIMARY KEY (id, taken))
    PARTITION BY RANGE (taken);
CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE m_rest PARTITION OF m DEFAULT;
CREATE TABLE m_2023 (id bigint NOT NULL, taken date NOT NULL, v numeric, CONSTRAINT m_2023_pkey PRIMARY KEY (id, taken));
INSERT INTO m SELECT g, DATE '2024-01-01' + g % 800, g FROM generate_series(1, 2000) g;
INSERT INTO m_2023 SELECT g, DATE '2023-01-01' + g % 365, g FROM generate_series(1, 500) g;
"""
RANGE_SPEC = """
table: m
columns: [{name: id, type: bigint}, {name: taken, type: date}, {name: v, type: numeric, nullable: true}]
primary_key: [id, taken]
partition_by: {strategy: range, columns: [taken]}
partitions:
  - {name: m_2023, from: ['2023-01-01'], to: ['2024-01-01']}
  - {name: m_2024, from: ['2024-01-01'], to: ['2025-01-01']}
  - {name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}
  - {name: m_rest, default: true}
"""
LIST_DB = """
CREATE TABLE c (id bigint NOT NULL, region text NOT NULL, CONSTRAINT c_pkey PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE c_eu PARTITION OF c FOR VALUES IN ('de', 'fr');
CREATE TABLE c_us PARTITION OF c FOR VALUES IN ('us');
INSERT INTO c SELECT g, (ARRAY['de', 'fr', 'us'])[1 + g % 3] FROM generate_series(1, 900) g;
"""
LIST_SPEC = """
table: c
columns: [{name: id, type: bigint}, {name: region, type: text}]
primary_key: [id, region]
partition_by: {strategy: list, columns: [region]}
partitions:
  - {name: c_eu, in: [de, fr]}
  - {name: c_us, in: [us]}
"""
HASH_DB = """
CREATE TABLE h (id bigint NOT NULL PRIMARY KEY, k text) PARTITION BY HASH (id);
CREATE TABLE h_0 PARTITION OF h FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE h_1 (id bigint NOT NULL PRIMARY KEY, k text);
INSERT INTO h SELECT g, 'k' || g % 7 FROM generate_series(1, 3000) g WHERE satisfies_hash_partition('h'::regclass, 2, 0, g::bigint);
INSERT INTO h_1 SELECT g, 'k' || g % 7 FROM generate_series(1, 3000) g WHERE satisfies_hash_partition('h'::regclass, 2, 1, g::bigint);
"""
HASH_SPEC = """
table: h
columns: [{name: id, type: bigint, primary_key: true}, {name: k, type: text, nullable: true}]
partition_by: {strategy: hash, columns: [id]}
partitions:
  - {name: h_0, modulus: 2, remainder: 0}
  - {name: h_1, modulus: 2, remainder: 1}
"""

_LOCKS = """
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relkind IN ('r', 'p')
  AND c.relnamespace = 'public'::regnamespace
"""


def _run_watching(dsn: str, stmt: str) -> tuple[dict[str, set[str]], list[str]]:
    """Run `stmt` in its own transaction: the table locks it holds before commit, and Postgres' DEBUG1 messages."""
    notes: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notes.append(d.message_primary or ""))
        conn.execute("SET client_min_messages = debug1")
        with conn.transaction():
            conn.execute(stmt.encode())
            locks: dict[str, set[str]] = {}
            for rel, mode in conn.execute(_LOCKS).fetchall():
                locks.setdefault(str(rel), set()).add(str(mode))
    return locks, notes


@pytest.mark.parametrize(("db", "spec", "parent", "parts", "default"), [
    (RANGE_DB, RANGE_SPEC, "m", {"m_2023": False, "m_2030": True}, "m_rest"),
    (LIST_DB, LIST_SPEC.replace("  - {name: c_us, in: [us]}", "  - {name: c_us, in: [us]}\n  - {name: c_ch, in: [ch]}\n"
                                "  - {name: c_rest, default: true}"), "c", {"c_ch": True, "c_rest": True}, None),
    (HASH_DB, HASH_SPEC, "h", {"h_1": False}, None),
], ids=["range_default", "list", "hash"])
def test_online_attach_takes_the_locks_its_hazard_says_and_skips_the_scans(
        fresh_dsn: str, db: str, spec: str, parent: str, parts: dict[str, bool], default: str | None) -> None:
    execute(fresh_dsn, db)
    p = plan(fresh_dsn, spec)
    assert not p.refusals, p.refusals
    attaches = [c for c in p.changes if c.kind == "attach_partition"]
    assert len(attaches) == len(parts) and all(not c.transactional for c in attaches)
    for c in p.changes:
        if c.kind == "prepare_partition":  # ACCESS EXCLUSIVE on the partition-to-be and the default partition only
            for stmt in c.sql:
                locks, _ = _run_watching(fresh_dsn, stmt)
                assert locks.get(parent, set()) <= {"AccessShareLock"}, (stmt, locks)  # LIKE reads its shape
                assert all(m <= {"AccessExclusiveLock", "ShareLock", "AccessShareLock"} for m in locks.values()), locks
            assert Hazard.ACCESS_EXCLUSIVE_LOCK in c.hazards
    for c in attaches:
        name = next(n for n in parts if f'"{n}"' in c.sql[-1] or f'"{n}"' in " ".join(c.sql))
        for stmt in c.sql:
            locks, notes = _run_watching(fresh_dsn, stmt)
            if "VALIDATE CONSTRAINT" in stmt:
                target = stmt.split('"')[3]  # ALTER TABLE "schema"."table" VALIDATE …
                assert locks.pop(target) == {"ShareUpdateExclusiveLock"}, locks  # writers go on while it reads
                assert set().union(*locks.values()) <= {"AccessShareLock"}, locks  # a hash check reads its parent
                assert Hazard.LONG_RUNNING in c.hazards
            elif "ATTACH PARTITION" in stmt:
                assert locks[parent] == {"ShareUpdateExclusiveLock"}, locks  # readers and writers of the parent go on
                assert "AccessExclusiveLock" in locks[name]
                if default is not None and name != default:
                    assert "AccessExclusiveLock" in locks[default] and Hazard.ACCESS_EXCLUSIVE_LOCK in c.hazards
                    assert any(f'default partition "{default}" is implied by existing constraints' in n for n in notes), notes
                if not name.endswith("rest"):  # the bound is proven by the CHECK: no scan of the partition
                    assert any(f'partition constraint for table "{name}" is implied by existing constraints' in n
                               for n in notes), notes
    again = plan(fresh_dsn, spec)
    assert again.empty, [c.description for c in again.changes]
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%bound' OR conname LIKE '%_not_%'") == 0


def test_detach_keeps_the_rows_and_only_drop_true_deletes(fresh_dsn: str) -> None:
    execute(fresh_dsn, LIST_DB)
    without_us = LIST_SPEC.replace("  - {name: c_us, in: [us]}\n", "")
    p = plan(fresh_dsn, without_us)
    (c,) = p.changes
    assert c.kind == "detach_partition" and not c.transactional and "CONCURRENTLY" in c.sql[0]  # no default partition
    assert Hazard.BREAKS_READERS in c.hazards and Hazard.DELETES_DATA not in c.hazards and c.inverse_sql
    with pytest.raises(BreakingChangeBlocked):
        apply(fresh_dsn, p)  # rows leave the parent: breaking, blocked by default
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert scalar(fresh_dsn, "SELECT count(*) FROM c_us") == 300 and scalar(fresh_dsn, "SELECT count(*) FROM c") == 600
    assert plan(fresh_dsn, without_us).empty
    execute(fresh_dsn, *(c.inverse_sql or ()))  # the undo attaches it again, rows and all
    assert scalar(fresh_dsn, "SELECT count(*) FROM c") == 900
    dropped = LIST_SPEC.replace("{name: c_us, in: [us]}", "{name: c_us, in: [us], drop: true}")
    (d,) = plan(fresh_dsn, dropped).changes
    assert d.kind == "detach_partition" and "DROP TABLE" in d.sql[-1]
    assert {Hazard.DELETES_DATA, Hazard.NOT_REVERSIBLE} <= set(d.hazards) and d.inverse_sql is None
    converge(fresh_dsn, dropped)
    assert scalar(fresh_dsn, "SELECT to_regclass('c_us')") is None


def test_detach_with_a_default_partition_is_plain_and_in_the_transaction(fresh_dsn: str) -> None:
    execute(fresh_dsn, RANGE_DB)
    (c,) = plan(fresh_dsn, RANGE_SPEC.replace("  - {name: m_2023, from: ['2023-01-01'], to: ['2024-01-01']}\n", "")
                .replace("  - {name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}\n", "")
                .replace("  - {name: m_2024, from: ['2024-01-01'], to: ['2025-01-01']}\n", "")).changes
    assert c.transactional and "CONCURRENTLY" not in c.sql[0]
    locks, _ = _run_watching(fresh_dsn, c.sql[0])
    assert {"m", "m_2024", "m_rest"} <= {r for r, modes in locks.items() if "AccessExclusiveLock" in modes}
    assert Hazard.ACCESS_EXCLUSIVE_LOCK in c.hazards


def test_key_changes_are_refused_and_unlisted_partitions_stay(fresh_dsn: str) -> None:
    execute(fresh_dsn, LIST_DB, "CREATE TABLE plain (id bigint PRIMARY KEY)")
    other_key = LIST_SPEC.replace("{strategy: list, columns: [region]}", "{strategy: hash, columns: [id]}")
    other_key = other_key.split("partitions:")[0]
    assert any("partition key would change" in r for r in plan(fresh_dsn, other_key).refusals)
    parted_plain = "table: plain\ncolumns: [{name: id, type: bigint, primary_key: true}]\n" \
                   "partition_by: {strategy: hash, columns: [id]}\n"
    assert any("cannot partition an existing table" in r for r in plan(fresh_dsn, parted_plain).refusals)
    unlisted = plan(fresh_dsn, LIST_SPEC.split("partition_by:")[0])  # neither partition_by nor partitions
    assert unlisted.empty
    assert {("partitioning", "LIST (region)"), ("partition", "public.c_us")} <= {(u.kind, u.name) for u in unlisted.unmanaged}


def test_indexes_and_keys_reach_every_partition_online(fresh_dsn: str) -> None:
    execute(fresh_dsn, HASH_DB, "ALTER TABLE h ATTACH PARTITION h_1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)")
    more = HASH_SPEC.replace("partitions:", "indexes:\n  - {name: h_k, columns: [k]}\nunique:\n"
                             "  - {name: h_id_k_key, columns: [id, k]}\npartitions:")
    p = converge(fresh_dsn, more)
    ix = next(c for c in p.changes if c.kind == "add_index")
    assert "ON ONLY" in ix.sql[0] and sum("CONCURRENTLY" in s for s in ix.sql) == 2 and not ix.transactional
    key = next(c for c in p.changes if c.kind == "add_unique")
    assert sum("CONCURRENTLY" in s for s in key.sql) == 2 and "ADD CONSTRAINT" in key.sql[-1]
    # each partition's unique index was attached, not built again by ADD CONSTRAINT: pkey, h_0_k_idx, h_0_id_k_key
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'h_0'::regclass") == 3
    assert scalar(fresh_dsn, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'h'::regclass") is True
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'h_k'::regclass") == 2
    locks, _ = _run_watching(fresh_dsn, "CREATE INDEX h_probe ON ONLY h (k)")
    assert locks["h"] == {"ShareLock"} and "h_0" not in locks  # the parent only, and it holds no rows itself


BAD = [
    ("{name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}", "{name: m_2030, from: ['2024-06-01'], to: ['2031-01-01']}",
     "overlaps partition m_2024", "partitions[2].from"),
    ("{name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}", "{name: m_2030, in: ['2030-01-01']}",
     "needs from and to", "partitions[2].in"),
    ("{name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}", "{name: m_2030, from: ['2030-13-01'], to: ['2031-01-01']}",
     "2030-13-01", "partitions[2].from[0]"),
    ("{name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}", "{name: m_2030, from: ['2031-01-01'], to: ['2030-01-01']}",
     "the range is empty", "partitions[2].to"),
    ("columns: [taken]}", "columns: [takne]}", "partition key column 'takne'", "partition_by.columns[0]"),
    ("primary_key: [id, taken]", "primary_key: [id]", "must include the partition key", "primary_key"),
    ("{name: m_rest, default: true}", "{name: m_rest, default: true}\n  - {name: m_more, default: true}",
     "only one partition can be the default", "partitions[4]"),
]


@pytest.mark.parametrize(("old", "new", "message", "key"), BAD,
                         ids=["overlap", "wrong_kind", "bad_value", "empty", "no_column", "pk", "two_defaults"])
def test_bad_bounds_are_exit_2_naming_file_line_and_key(fresh_dsn: str, old: str, new: str, message: str, key: str) -> None:
    execute(fresh_dsn, RANGE_DB)
    bad = RANGE_SPEC.replace(old, new)
    assert bad != RANGE_SPEC
    with pytest.raises(SpecError) as exc:
        apply(fresh_dsn, plan(fresh_dsn, bad))
    assert exc.value.exit_code == 2
    hits = [pr for pr in exc.value.problems if message in pr.message]
    assert hits and hits[0].file == "spec.yaml" and hits[0].line and key in hits[0].key, exc.value.problems
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'm'::regclass") == 2  # nothing changed


@pytest.mark.parametrize(("partitions", "message"), [
    ("  - {name: c_a, in: [de, fr]}\n  - {name: c_b, in: [us, de]}", "overlaps partition c_a"),
    ("  - {name: c_a, in: [de]}\n  - {name: c_b, modulus: 2, remainder: 0}", "needs in"),
])
def test_bad_list_bounds(fresh_dsn: str, partitions: str, message: str) -> None:
    spec = LIST_SPEC.split("partitions:")[0].replace("table: c", "table: c2") + "partitions:\n" + partitions + "\n"
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, spec)
    assert any(message in pr.message and pr.line for pr in exc.value.problems), exc.value.problems


def test_hash_moduli_must_divide_and_not_overlap(fresh_dsn: str) -> None:
    base = HASH_SPEC.split("partitions:")[0].replace("table: h", "table: h2") + "partitions:\n"
    for parts, message in (("  - {name: a, modulus: 2, remainder: 0}\n  - {name: b, modulus: 4, remainder: 2}", "overlaps"),
                           ("  - {name: a, modulus: 2, remainder: 0}\n  - {name: b, modulus: 3, remainder: 1}", "divide"),
                           ("  - {name: a, modulus: 2, remainder: 2}", "less than the modulus")):
        with pytest.raises(SpecError) as exc:
            plan(fresh_dsn, base + parts + "\n")
        assert any(message in pr.message for pr in exc.value.problems), exc.value.problems


def test_equal_values_spelled_differently_are_the_same_bound(fresh_dsn: str) -> None:
    execute(fresh_dsn, "CREATE TABLE t (at timestamp NOT NULL, n int NOT NULL) PARTITION BY RANGE (at, n);"
                       "CREATE TABLE t_1 PARTITION OF t FOR VALUES FROM ('2024-01-01', MINVALUE) TO ('2024-02-01', 10)")
    spec = ("table: t\ncolumns: [{name: at, type: timestamp}, {name: n, type: integer}]\n"
            "partition_by: {strategy: range, columns: [at, n]}\n"
            "partitions: [{name: t_1, from: ['2024-01-01 00:00', MINVALUE], to: ['2024-02-01', '010']}]\n")
    assert plan(fresh_dsn, spec).empty


def test_bounds_read_back_as_postgres_prints_them() -> None:
    b = parse_bound("FOR VALUES FROM (MINVALUE, '-5') TO ('x''y', MAXVALUE)")
    assert b is not None and b.lower == ("\x00MINVALUE", "-5") and b.upper == ("x'y", "\x00MAXVALUE")
    assert parse_bound("FOR VALUES IN ('a', NULL, true)").values == ("a", None, "true")  # type: ignore[union-attr]
    h = parse_bound("FOR VALUES WITH (modulus 4, remainder 3)")
    assert h is not None and (h.modulus, h.remainder) == (4, 3)
    assert parse_bound("DEFAULT").strategy == "default"  # type: ignore[union-attr]


def test_expand_state_row_keeps_the_partitioning(fresh_dsn: str) -> None:
    import json

    from migrate_assets.expand import read_live, shape

    execute(fresh_dsn, RANGE_DB)
    with psycopg.connect(fresh_dsn) as conn:
        live = read_live(conn, "public", "m")
    assert live is not None and live.partitioning is not None
    assert shape.from_json(json.loads(json.dumps(shape.to_json(live)))) == live


def test_docs_examples_converge(fresh_dsn: str) -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "partition_by" in b or "sequence:" in b]
    assert len(blocks) == 2
    for b in blocks:
        p = converge(fresh_dsn, b)
        assert p.changes and not p.refusals


def test_column_and_constraint_changes_on_the_parent_are_planned_once(fresh_dsn: str) -> None:
    execute(fresh_dsn, RANGE_DB, "ALTER TABLE m ATTACH PARTITION m_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');"
                       "UPDATE m SET v = 0 WHERE v IS NULL;"
                       "CREATE TABLE ref (id bigint PRIMARY KEY); INSERT INTO ref SELECT generate_series(0, 3000)")
    spec = RANGE_SPEC.replace("  - {name: m_2030, from: ['2030-01-01'], to: ['2031-01-01']}\n", "").replace(
        "{name: v, type: numeric, nullable: true}", "{name: v, type: numeric}, {name: w, type: text, default: \"'x'\"}")
    spec += "checks: [{name: m_v_positive, expression: v >= 0}]\n"
    spec += "foreign_keys: [{name: m_id_fk, columns: [id], references: {table: ref, columns: [id]}}]\n"
    spec = "- table: ref\n  columns: [{name: id, type: bigint, primary_key: true}]\n- " + spec.strip().replace("\n", "\n  ")
    p = converge(fresh_dsn, spec)
    assert {c.table for c in p.changes} == {"public.m"}  # nothing per partition: Postgres carries it to each
    kinds = [c.kind for c in p.changes]
    assert kinds.count("add_column") == 1 and "set_not_null" in kinds and "add_check" in kinds
    fk = next(c for c in p.changes if c.kind == "add_foreign_key")
    assert "NOT VALID" not in fk.sql[0] and Hazard.LONG_RUNNING in fk.hazards
    for part in ("m_2023", "m_2024", "m_rest"):
        assert scalar(fresh_dsn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'v'",
                      part) is True
        assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass "
                                 "AND conname IN ('m_v_positive', 'm_id_fk')", part) == 2


def test_detach_concurrently_takes_access_exclusive_on_the_partition_only(fresh_dsn: str) -> None:
    """Seen from a third session while a reader of the partition holds it up: SHARE UPDATE EXCLUSIVE on the parent
    (granted), ACCESS EXCLUSIVE on the partition (waiting) — never on the parent."""
    import threading
    import time

    execute(fresh_dsn, LIST_DB)
    (c,) = plan(fresh_dsn, LIST_SPEC.replace("  - {name: c_us, in: [us]}\n", "")).changes
    assert Hazard.ACCESS_EXCLUSIVE_LOCK in c.hazards and "ACCESS EXCLUSIVE on the partition" in c.description
    with psycopg.connect(fresh_dsn) as reader, psycopg.connect(fresh_dsn, autocommit=True) as detacher, \
            psycopg.connect(fresh_dsn, autocommit=True) as watcher:
        reader.execute("SELECT count(*) FROM c_us").fetchone()  # an open transaction reading the partition
        pid = detacher.info.backend_pid
        worker = threading.Thread(target=lambda: detacher.execute(c.sql[0].encode()))
        worker.start()
        locks: dict[str, set[tuple[str, bool]]] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(not g for m in locks.values() for _, g in m):
            time.sleep(0.02)  # poll interval
            locks = {}
            for rel, mode, granted in watcher.execute(
                    "SELECT c.relname, l.mode, l.granted FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = %s AND c.relkind IN ('r', 'p')", [pid]).fetchall():
                locks.setdefault(str(rel), set()).add((str(mode), bool(granted)))
        reader.rollback()
        worker.join(timeout=30)
    assert locks.get("c_us") == {("AccessExclusiveLock", False)}, locks
    assert locks.get("c") == {("ShareUpdateExclusiveLock", True)}, locks
    assert scalar(fresh_dsn, "SELECT count(*) FROM c") == 600


def _interrupted_detach(dsn: str, stmt: str) -> None:
    """Start `stmt` (DETACH … CONCURRENTLY) while a reader holds the partition, then cancel it once it waits."""
    import threading
    import time

    with psycopg.connect(dsn) as reader, psycopg.connect(dsn, autocommit=True) as detacher, \
            psycopg.connect(dsn, autocommit=True) as watcher:
        reader.execute("SELECT count(*) FROM c_us").fetchone()
        pid = detacher.info.backend_pid
        failed: list[Exception] = []

        def run() -> None:
            try:
                detacher.execute(stmt.encode())
            except psycopg.Error as exc:
                failed.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid]).fetchone()[0]:  # type: ignore[index]
            time.sleep(0.02)  # poll interval
        watcher.execute("SELECT pg_cancel_backend(%s)", [pid])
        worker.join(timeout=30)
        reader.rollback()
    assert failed, "the detach was meant to be interrupted"


@pytest.mark.parametrize("listed", [False, True], ids=["left_out", "still_listed"])
def test_an_interrupted_concurrent_detach_is_finalized(fresh_dsn: str, listed: bool) -> None:
    execute(fresh_dsn, LIST_DB)
    (c,) = plan(fresh_dsn, LIST_SPEC.replace("  - {name: c_us, in: [us]}\n", "")).changes
    _interrupted_detach(fresh_dsn, c.sql[0])
    assert scalar(fresh_dsn, "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'c_us'::regclass") is True
    spec = LIST_SPEC.replace("in: [us]", "in: [us, ca]") if listed else LIST_SPEC.replace("  - {name: c_us, in: [us]}\n", "")
    p = converge(fresh_dsn, spec)
    assert "FINALIZE" in p.changes[0].sql[0] and p.changes[0].transactional
    assert [c.kind for c in p.changes][-1] == ("attach_partition" if listed else "detach_partition")
    assert scalar(fresh_dsn, "SELECT count(*) FROM c") == (900 if listed else 600)
    assert scalar(fresh_dsn, "SELECT count(*) FROM c_us") == 300
    if listed:  # the CHECK FINALIZE added for the old bound is gone: the new value goes in
        execute(fresh_dsn, "INSERT INTO c VALUES (5000, 'ca')")


def test_a_list_key_of_an_enum_the_plan_creates(fresh_dsn: str) -> None:
    spec = ("- enum: state\n  values: [open, paid, void]\n"
            "- table: bills\n  columns: [{name: id, type: bigint}, {name: st, type: public.state}]\n"
            "  primary_key: [id, st]\n  partition_by: {strategy: list, columns: [st]}\n"
            "  partitions: [{name: bills_open, in: [open]}, {name: bills_done, in: [paid, void]}]\n")
    converge(fresh_dsn, spec)
    execute(fresh_dsn, "INSERT INTO bills VALUES (1, 'open'), (2, 'void')")
    assert scalar(fresh_dsn, "SELECT count(*) FROM bills_done") == 1
    with pytest.raises(SpecError) as exc:  # the enum exists now: Postgres reads the values, and sees the overlap
        plan(fresh_dsn, spec.replace("in: [paid, void]", "in: [paid, open]"))
    assert any("overlaps partition bills_open" in pr.message for pr in exc.value.problems)


def test_an_existing_table_gets_the_parents_indexes_concurrently_before_the_attach(fresh_dsn: str) -> None:
    execute(fresh_dsn, RANGE_DB, "CREATE INDEX m_v_idx ON m (v)",
            "CREATE TABLE m_2022 (id bigint NOT NULL, taken date NOT NULL, v numeric);"
            "INSERT INTO m_2022 SELECT g, DATE '2022-01-01' + g % 365, g FROM generate_series(1, 300) g")
    spec = RANGE_SPEC.replace("partitions:\n", "indexes: [{name: m_v_idx, columns: [v]}]\npartitions:\n"
                              "  - {name: m_2022, from: ['2022-01-01'], to: ['2023-01-01']}\n")
    p = converge(fresh_dsn, spec)
    a22 = next(c for c in p.changes if c.kind == "attach_partition" and '"m_2022"' in c.sql[0])
    assert [s.split(" ON ")[0] for s in a22.sql if "CONCURRENTLY" in s] == [
        'CREATE INDEX CONCURRENTLY "m_2022_v_idx"', 'CREATE UNIQUE INDEX CONCURRENTLY "m_2022_pkey"']
    assert any("USING INDEX" in s for s in a22.sql) and "build the 2 index(es)" in a22.description
    for part in ("m_2022", "m_2023"):  # the prebuilt ones were attached: ATTACH built none of its own
        assert scalar(fresh_dsn, "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", part) == 2
        assert scalar(fresh_dsn, "SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid "
                                 "WHERE x.indrelid = %s::regclass", part) == 2
    assert scalar(fresh_dsn, "SELECT count(*) FROM m") == 2800
