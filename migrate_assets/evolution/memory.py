"""In-memory implementations of the layer protocols (`evolution.layers`), for fast tests of the engine.

They keep the contracts the real adapters keep — the same return types, the same typed errors (a stale Iceberg
schema id is a `TransientError`, an unknown subject returns None, a missing table is None) — so the saga,
the planners, pre-flight, verify, resume, probe and every compensation run against them in milliseconds.
They are NOT stand-ins for the real systems in the acceptance tests: those run against PostgreSQL, Kafka Connect,
the registry and pyiceberg.

Faults: `layer.fail(method, error, times=1, after=False)` makes the next `times` calls of `method` raise
`error` — before doing anything, or with `after=True` once the effect has landed (a process that died after
its commit). `MemorySource` applies the statements of `schema.ddl` to its column model (ADD/DROP/RENAME COLUMN,
TYPE, SET/DROP NOT NULL, CREATE/DROP TABLE); anything else it records but does not interpret.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from migrate_assets.errors import InvalidInputError, LayerUnreachableError, Problem, TransientError
from migrate_assets.evolution.layers import (
    ANY_SNAPSHOT,
    CompatibilityResult,
    ConnectorStatus,
    DdlResult,
    IcebergField,
    IcebergOp,
    IcebergState,
    Layer,
    RegistryVersion,
    SlotState,
    SourceColumn,
)
from migrate_assets.evolution.store import EvolutionStore, RunRecord


@dataclass
class _Fault:
    error: BaseException
    times: int
    after: bool
    hook: Callable[[], None] | None = None


class _Faults:
    """`fail(method, ...)` arms a fault; `_call(method, effect)` runs the effect under it."""

    layer: Layer

    def __init__(self) -> None:
        self.faults: dict[str, _Fault] = {}
        self.calls: list[str] = []

    def fail(self, method: str, error: BaseException | None = None, *, times: int = 1, after: bool = False,
             hook: Callable[[], None] | None = None) -> None:
        """Arm a fault; `hook` runs just before it is raised (e.g. to make the run store stop saving)."""
        self.faults[method] = _Fault(error or LayerUnreachableError(self.layer, f"{method}: down"), times, after, hook)

    def _call(self, method: str, effect: Callable[[], Any]) -> Any:
        self.calls.append(method)
        fault = self.faults.get(method)
        if fault is None or fault.times <= 0:
            return effect()
        fault.times -= 1
        if fault.after:
            effect()
        if fault.hook is not None:
            fault.hook()
        raise fault.error


# --------------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------------

_IDENT = r'"((?:[^"]|"")+)"'
_TABLE = rf'{_IDENT}\.{_IDENT}'
_ALTER = re.compile(rf"^ALTER TABLE {_TABLE} (.*)$", re.S)
_ADD = re.compile(rf"^ADD COLUMN {_IDENT} (.+?)(?: DEFAULT .+?)?( NOT NULL)?$", re.S)
_TYPE = re.compile(rf"^ALTER COLUMN {_IDENT} TYPE (.+?)(?: USING .*)?$", re.S)
_CREATE = re.compile(rf"^CREATE TABLE {_TABLE} \((.*)\)$", re.S)


def _name(text: str) -> str:
    return text.replace('""', '"')


class MemorySource(_Faults):
    layer = Layer.SOURCE_DB

    def __init__(self, tables: dict[str, list[SourceColumn]] | None = None) -> None:
        super().__init__()
        self.tables = {k: list(v) for k, v in (tables or {}).items()}
        self.lsn = 0x1000000
        self.slots: dict[str, SlotState] = {}
        #: slots whose consumer is down: they stop confirming new LSNs
        self.stuck: set[str] = set()
        self.ddl: list[list[str]] = []
        #: (table, column or None) → non-null values (rows); (table, column) → values a cast back would change
        self.values: dict[tuple[str, str | None], int] = {}
        self.changed: dict[tuple[str, str], int] = {}

    def add_slot(self, name: str) -> None:
        self.slots[name] = SlotState(name, True, self.lsn, self.lsn)

    # -- protocol ------------------------------------------------------------------------------------
    def columns(self, table: str) -> list[SourceColumn] | None:
        return self._call("columns", lambda: list(self.tables[table]) if table in self.tables else None)

    def fingerprint(self, table: str) -> str:
        def fp() -> str:
            cols = [(c.name, c.type, c.nullable) for c in self.tables.get(table, [])]
            return hashlib.sha256(json.dumps(cols).encode()).hexdigest()[:16]

        return str(self._call("fingerprint", fp))

    def execute_ddl(self, statements: list[str], lock_timeout: float) -> DdlResult:
        def run() -> DdlResult:
            before = {k: list(v) for k, v in self.tables.items()}
            try:
                for stmt in statements:
                    self._apply(stmt)
            except Exception:
                self.tables = before  # one transaction
                raise
            self.ddl.append(list(statements))
            self.lsn += 0x100
            return DdlResult(self.lsn)

        return self._call("execute_ddl", run)  # type: ignore[no-any-return]

    def current_lsn(self) -> int:
        return int(self._call("current_lsn", lambda: self.lsn))

    def count_values(self, table: str, column: str | None = None) -> int:
        return int(self._call("count_values", lambda: self.values.get((table, column), 0)))

    def count_changed(self, table: str, column: str, type_sql: str, using_sql: str) -> int:
        return int(self._call("count_changed", lambda: self.changed.get((table, column), 0)))

    def slot(self, slot_name: str) -> SlotState | None:
        def read() -> SlotState | None:
            st = self.slots.get(slot_name)
            if st is None:
                return None
            if slot_name not in self.stuck:
                st = self.slots[slot_name] = replace(st, confirmed_flush_lsn=self.lsn)
            return st

        return self._call("slot", read)  # type: ignore[no-any-return]

    def published(self, publication: str, tables: Sequence[str]) -> bool:
        return bool(self._call("published", lambda: True))  # the in-memory connector publishes every table

    def write_heartbeat(self) -> None:
        def beat() -> None:
            self.lsn += 0x10

        self._call("write_heartbeat", beat)

    # -- the DDL the planners write --------------------------------------------------------------------
    def _apply(self, stmt: str) -> None:
        m = _CREATE.match(stmt)
        if m:
            cols = []
            for part in re.split(r", (?=\")", m[3]):
                cm = re.match(rf"^{_IDENT} (.+?)(?: (?:GENERATED|DEFAULT) .*?)?( NOT NULL)?$", part)
                if cm:
                    cols.append(SourceColumn(_name(cm[1]), cm[2], not cm[3]))
            self.tables[f"{_name(m[1])}.{_name(m[2])}"] = cols
            return
        m = re.match(rf"^DROP TABLE {_TABLE}$", stmt)
        if m:
            self.tables.pop(f"{_name(m[1])}.{_name(m[2])}", None)
            return
        m = _ALTER.match(stmt)
        if not m:
            return  # UPDATE, INSERT, COMMENT …: no shape change
        table, action = f"{_name(m[1])}.{_name(m[2])}", m[3]
        cols = self.tables[table]
        find = {c.name: i for i, c in enumerate(cols)}

        def col(name: str) -> int:
            if name not in find:
                raise ValueError(f'column "{name}" of relation "{table}" does not exist')
            return find[name]

        if a := _ADD.match(action):
            cols.append(SourceColumn(_name(a[1]), a[2], not a[3]))
        elif a := re.match(rf"^DROP COLUMN (IF EXISTS )?{_IDENT}$", action):
            if a[1] is None or _name(a[2]) in find:
                del cols[col(_name(a[2]))]
        elif a := re.match(rf"^RENAME COLUMN {_IDENT} TO {_IDENT}$", action):
            i = col(_name(a[1]))
            cols[i] = replace(cols[i], name=_name(a[2]))
        elif a := _TYPE.match(action):
            i = col(_name(a[1]))
            cols[i] = replace(cols[i], type=a[2])
        elif a := re.match(rf"^ALTER COLUMN {_IDENT} (SET|DROP) NOT NULL$", action):
            i = col(_name(a[1]))
            cols[i] = replace(cols[i], nullable=a[2] == "DROP")


# --------------------------------------------------------------------------------------------------------
# schema registry
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Version:
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


class MemoryRegistry(_Faults):
    layer = Layer.SCHEMA_REGISTRY

    def __init__(self, level: str = "BACKWARD") -> None:
        super().__init__()
        self.subjects: dict[str, list[_Version]] = {}
        self.level = level
        self.next_id = 1
        #: schemas (JSON text, compared parsed) the compatibility check refuses
        self.incompatible: list[str] = []

    def _live(self, subject: str) -> list[_Version]:
        return [v for v in self.subjects.get(subject, []) if not v.deleted]

    def latest(self, subject: str) -> RegistryVersion | None:
        def read() -> RegistryVersion | None:
            live = self._live(subject)
            return RegistryVersion(subject, live[-1].version, live[-1].schema_id, live[-1].schema) if live else None

        return self._call("latest", read)  # type: ignore[no-any-return]

    def versions(self, subject: str) -> list[int]:
        return list(self._call("versions", lambda: [v.version for v in self._live(subject)]))

    def compatibility_level(self, subject: str) -> str:
        return str(self._call("compatibility_level", lambda: self.level))

    def check_compatibility(self, subject: str, schema: str) -> CompatibilityResult:
        def check() -> CompatibilityResult:
            bad = any(json.loads(s) == json.loads(schema) for s in self.incompatible)
            return CompatibilityResult(not bad, self.level, ("refused by the test",) if bad else ())

        return self._call("check_compatibility", check)  # type: ignore[no-any-return]

    def register(self, subject: str, schema: str) -> RegistryVersion:
        def reg() -> RegistryVersion:
            versions = self.subjects.setdefault(subject, [])
            same = next((v for v in self._live(subject) if json.loads(v.schema) == json.loads(schema)), None)
            if same is None:
                number = max((v.version for v in versions), default=0) + 1  # soft-deleted numbers are not reused
                same = _Version(number, self.next_id, schema)
                self.next_id += 1
                versions.append(same)
            return RegistryVersion(subject, same.version, same.schema_id, same.schema)

        return self._call("register", reg)  # type: ignore[no-any-return]

    def soft_delete(self, subject: str, version: int) -> None:
        def delete() -> None:
            for v in self.subjects.get(subject, []):
                if v.version == version:
                    v.deleted = True

        self._call("soft_delete", delete)


# --------------------------------------------------------------------------------------------------------
# Iceberg
# --------------------------------------------------------------------------------------------------------


class MemoryLakehouse(_Faults):
    """Schemas by id per table (like an Iceberg table's metadata), the current one, and a snapshot id."""

    layer = Layer.LAKEHOUSE

    def __init__(self) -> None:
        super().__init__()
        self.schemas: dict[str, dict[int, tuple[IcebergField, ...]]] = {}
        self.current: dict[str, tuple[int, int | None]] = {}  # identifier → (schema id, snapshot id)
        self.snapshot_schema: dict[int, int] = {}  # snapshot id → the schema id it was written with
        #: (identifier, column or None) → non-null values (rows) in the current snapshot
        self.values: dict[tuple[str, str | None], int] = {}
        self.next_snapshot = 100

    def add_table(self, identifier: str, columns: list[tuple[str, str]], snapshot_id: int | None = 1) -> None:
        fields = tuple(IcebergField(i + 1, n, t, False) for i, (n, t) in enumerate(columns))
        self.schemas[identifier] = {0: fields}
        self.current[identifier] = (0, snapshot_id)
        if snapshot_id is not None:
            self.snapshot_schema[snapshot_id] = 0

    def write(self, identifier: str, rows: dict[str | None, int] | None = None) -> int:
        """A writer (the sink) commits a snapshot with the current schema; `rows` adds to the value counts."""
        sid, _ = self.current[identifier]
        self.next_snapshot += 1
        self.current[identifier] = (sid, self.next_snapshot)
        self.snapshot_schema[self.next_snapshot] = sid
        for col, n in (rows or {}).items():
            self.values[(identifier, col)] = self.values.get((identifier, col), 0) + n
        return self.next_snapshot

    def _state(self, identifier: str) -> IcebergState | None:
        if identifier not in self.current:
            return None
        sid, snap = self.current[identifier]
        return IcebergState(identifier, sid, snap, self.schemas[identifier][sid],
                            self.snapshot_schema.get(snap) if snap is not None else None)

    def state(self, identifier: str) -> IcebergState | None:
        return self._call("state", lambda: self._state(identifier))  # type: ignore[no-any-return]

    def _updated(self, st: IcebergState, ops: tuple[IcebergOp, ...]) -> tuple[IcebergField, ...]:
        fields = list(st.fields)
        next_id = max((f.field_id for f in fields), default=0) + 1
        for op in ops:
            i = next((k for k, f in enumerate(fields) if f.name == op.name), None)
            if op.kind == "add_column":
                if i is not None:
                    raise ValueError(f"field {op.name} already exists")
                fields.append(IcebergField(next_id, op.name, op.type or "string", False))
                next_id += 1
                continue
            if i is None:
                raise ValueError(f"no field {op.name} in {st.identifier}")
            if op.kind == "promote":
                fields[i] = replace(fields[i], type=op.type or fields[i].type)
            elif op.kind == "rename":
                fields[i] = replace(fields[i], name=op.new_name or op.name)
            elif op.kind == "delete":
                del fields[i]
            elif op.kind == "make_optional":
                fields[i] = replace(fields[i], required=False)
        return tuple(fields)

    def validate(self, identifier: str, ops: tuple[IcebergOp, ...]) -> IcebergState:
        def check() -> IcebergState:
            st = self._state(identifier)
            if st is None:
                raise ValueError(f"no Iceberg table {identifier}")
            return replace(st, fields=self._updated(st, ops))

        return self._call("validate", check)  # type: ignore[no-any-return]

    def apply(self, identifier: str, ops: tuple[IcebergOp, ...], expected_schema_id: int,
              expected_snapshot_id: int | None = ANY_SNAPSHOT) -> IcebergState:
        def commit() -> IcebergState:
            st = self._state(identifier)
            assert st is not None
            if st.schema_id != expected_schema_id:  # the catalog's requirement failed: a commit conflict
                raise TransientError(f"{identifier}: schema id is {st.schema_id}, not {expected_schema_id}")
            if expected_snapshot_id != ANY_SNAPSHOT and st.snapshot_id != expected_snapshot_id:
                raise TransientError(f"{identifier}: main is at {st.snapshot_id}, not {expected_snapshot_id}")
            new_id = max(self.schemas[identifier]) + 1
            self.schemas[identifier][new_id] = self._updated(st, ops)
            self.current[identifier] = (new_id, st.snapshot_id)
            return self._state(identifier)  # type: ignore[return-value]

        return self._call("apply", commit)  # type: ignore[no-any-return]

    def restore_schema(self, identifier: str, schema_id: int, expected_schema_id: int,
                       expected_snapshot_id: int | None) -> IcebergState:
        def back() -> IcebergState:
            sid, snap = self.current[identifier]
            if (sid, snap) != (expected_schema_id, expected_snapshot_id):
                raise TransientError(f"{identifier}: schema restore lost to a concurrent change")
            if snap is not None and self.snapshot_schema.get(snap) == expected_schema_id != schema_id:
                raise ValueError(f"snapshot {snap} was written with schema id {expected_schema_id}")
            self.current[identifier] = (schema_id, snap)
            return self._state(identifier)  # type: ignore[return-value]

        return self._call("restore_schema", back)  # type: ignore[no-any-return]

    def count_values(self, identifier: str, column: str | None = None) -> int:
        return int(self._call("count_values", lambda: self.values.get((identifier, column), 0)))

    def create_table(self, identifier: str, columns: tuple[tuple[str, str], ...],
                     identifier_fields: tuple[str, ...] = ()) -> IcebergState:
        def create() -> IcebergState:
            if identifier in self.current:
                raise ValueError(f"{identifier} already exists")
            self.add_table(identifier, list(columns), None)
            self.schemas[identifier] = {0: tuple(IcebergField(f.field_id, f.name, f.type, f.name in identifier_fields)
                                                 for f in self.schemas[identifier][0])}
            return self._state(identifier)  # type: ignore[return-value]

        return self._call("create_table", create)  # type: ignore[no-any-return]

    def drop_table(self, identifier: str) -> None:
        def drop() -> None:
            self.current.pop(identifier, None)
            self.schemas.pop(identifier, None)

        self._call("drop_table", drop)


# --------------------------------------------------------------------------------------------------------
# Kafka Connect
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Connector:
    config: dict[str, str]
    state: str = "RUNNING"
    restarts: int = 0
    history: list[dict[str, str]] = field(default_factory=list)


class MemoryConnector(_Faults):
    """Connectors with a config and a state; a restart resumes the slot of a running connector."""

    layer = Layer.CONNECTOR

    def __init__(self, source: MemorySource) -> None:
        super().__init__()
        self.source = source
        self.connectors: dict[str, _Connector] = {}

    def add(self, name: str, config: dict[str, str]) -> None:
        self.connectors[name] = _Connector(dict(config))
        self.source.add_slot(config.get("slot.name", "debezium"))

    def _get(self, name: str) -> _Connector:
        if name not in self.connectors:
            raise LayerUnreachableError(self.layer, f"connector {name} does not exist")
        return self.connectors[name]

    def status(self, name: str) -> ConnectorStatus:
        def read() -> ConnectorStatus:
            c = self._get(name)
            return ConnectorStatus(name, c.state, (c.state,))

        return self._call("status", read)  # type: ignore[no-any-return]

    def config(self, name: str) -> dict[str, str]:
        return dict(self._call("config", lambda: dict(self._get(name).config)))

    def put_config(self, name: str, config: dict[str, str]) -> None:
        def put() -> None:
            c = self._get(name)
            c.history.append(c.config)
            c.config = dict(config)

        self._call("put_config", put)

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        def restart() -> None:
            c = self._get(name)
            c.restarts += 1
            if c.state == "FAILED":
                c.state = "RUNNING"

        self._call("restart", restart)

    def pause(self, name: str) -> None:
        def pause() -> None:
            self._get(name).state = "PAUSED"
            self.source.stuck.add(self._get(name).config.get("slot.name", "debezium"))

        self._call("pause", pause)

    def resume(self, name: str) -> None:
        def resume() -> None:
            self._get(name).state = "RUNNING"
            self.source.stuck.discard(self._get(name).config.get("slot.name", "debezium"))

        self._call("resume", resume)

    def wait_running(self, name: str, timeout: float) -> ConnectorStatus:
        def wait() -> ConnectorStatus:
            st = self.status(name)
            if not st.running:
                raise TransientError(f"connector {name} is {st.state}")
            return st

        return self._call("wait_running", wait)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------------
# the run store
# --------------------------------------------------------------------------------------------------------


class MemoryStore(EvolutionStore):
    """`EvolutionStore` without a database: every save goes through the stored JSON form (`EvolutionStore.row`),
    so a loaded record is what another process would read back. `dead` drops every later save (the process died
    before saving); `run_lock` is a plain reentrant marker."""

    def __init__(self) -> None:  # no database, no connection
        self.rows: dict[str, str] = {}
        self.dead = False
        self.saves = 0
        self.locked: str | None = None

    def save(self, rec: RunRecord) -> None:
        if not self.dead:
            self.saves += 1
            self.rows[rec.run_id] = json.dumps(EvolutionStore.row(rec))

    def load(self, run_id: str) -> RunRecord:
        if run_id not in self.rows:
            raise InvalidInputError([Problem(file="<command line>", key="RUN", message=f"no evolution run {run_id!r}")])
        return EvolutionStore.from_row(json.loads(self.rows[run_id]))

    def recent(self, limit: int = 20) -> list[tuple[str, str, str]]:
        rows = [json.loads(r) for r in reversed(self.rows.values())][:limit]
        return [(r["run_id"], r["table_name"], r["status"]) for r in rows]

    def close(self) -> None:
        pass

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        self.locked = run_id
        yield
