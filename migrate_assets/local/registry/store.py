"""SQLite persistence of subjects, versions, global schema ids and compatibility levels.

One connection guarded by one lock, every operation in its own transaction (`BEGIN IMMEDIATE` for writes):
the registry is a local development service, so serializing is simpler than clever and makes id assignment
trivially unique under concurrent registrations. WAL mode keeps readers in other processes (e.g. an
inspection with the sqlite3 shell) from blocking it. Schema rows are never deleted, so an id, once given
out, always names the same schema — also after a permanent delete and a re-registration.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import avro.schema

from . import compat
from .errors import (
    INCOMPATIBLE_SCHEMA,
    STORE_ERROR,
    SUBJECT_LEVEL_NOT_CONFIGURED,
    SUBJECT_NOT_SOFT_DELETED,
    SUBJECT_SOFT_DELETED,
    VERSION_NOT_SOFT_DELETED,
    VERSION_SOFT_DELETED,
    RegistryError,
    schema_not_found,
    subject_not_found,
    version_not_found,
)

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    normalized TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schemas_normalized ON schemas(normalized);
CREATE TABLE IF NOT EXISTS versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS versions_schema ON versions(schema_id);
CREATE TABLE IF NOT EXISTS config (
    subject TEXT PRIMARY KEY,
    level TEXT NOT NULL
);
"""

#: the key of the global compatibility level in `config` (Confluent subjects are never empty)
_GLOBAL = ""

LATEST = None


@dataclass(frozen=True)
class Version:
    """One subject-version, as the REST answers show it."""

    subject: str
    version: int
    id: int
    schema: str
    deleted: bool
    key: str = field(default="", repr=False)
    normalized: str = field(default="", repr=False)

    def to_json(self) -> dict[str, object]:
        return {"subject": self.subject, "version": self.version, "id": self.id, "schema": self.schema}


class Store:
    """All registry state; every public method is one atomic transaction."""

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        """`busy_timeout`: seconds to wait for another process holding the file before answering 50001."""
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        self._conn.executescript(_DDL)
        self._parsed: dict[int, avro.schema.Schema] = {}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise RegistryError(STORE_ERROR, f"Error in the backend data store: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Leave no transaction open, or every later BEGIN would fail."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- reading helpers (called inside a transaction) ------------------------------------------------------

    def _rows(self, c: sqlite3.Connection, subject: str, deleted: bool) -> list[Version]:
        sql = (
            "SELECT v.version, v.schema_id, s.text, v.deleted, s.key, s.normalized FROM versions v "
            "JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? ORDER BY v.version"
        )
        rows = [
            Version(subject, r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in c.execute(sql, (subject,))
        ]
        return rows if deleted else [r for r in rows if not r.deleted]

    def _one(self, c: sqlite3.Connection, subject: str, version: int | None, deleted: bool) -> Version:
        """The version asked for: 40401 when the subject has nothing visible, 40402 when the version is absent."""
        rows = self._rows(c, subject, deleted)
        if not rows:
            raise subject_not_found(subject)
        if version is LATEST:
            return rows[-1]
        for row in rows:
            if row.version == version:
                return row
        raise version_not_found(subject, version)

    def _parsed_schema(self, row: Version) -> avro.schema.Schema:
        if row.id not in self._parsed:
            self._parsed[row.id] = compat.parse_stored(row.schema)
        return self._parsed[row.id]

    def _level(self, c: sqlite3.Connection, subject: str | None) -> str | None:
        found = c.execute(
            "SELECT level FROM config WHERE subject = ?", (_GLOBAL if subject is None else subject,)
        )
        row = found.fetchone()
        return row[0] if row else None

    def _effective_level(self, c: sqlite3.Connection, subject: str) -> str:
        return self._level(c, subject) or self._level(c, None) or compat.DEFAULT_LEVEL

    def _incompatibilities(self, new: compat.ParsedSchema, against: list[Version], level: str) -> list[str]:
        messages = []
        for row in reversed(against):
            found = compat.check(new, self._parsed_schema(row), row.version, level)
            if found:
                messages += found
                messages += [f"{{oldSchemaVersion: {row.version}}}", f"{{oldSchema: '{row.schema}'}}"]
        if messages:
            messages.append(f"{{compatibility: '{level}'}}")
        return messages

    @staticmethod
    def _matches(row: Version, new: compat.ParsedSchema, normalize: bool) -> bool:
        return row.normalized == new.normalized if normalize else row.key == new.key

    # -- subjects and versions ------------------------------------------------------------------------------

    def subjects(self, deleted: bool = False, deleted_only: bool = False, prefix: str = "") -> list[str]:
        with self._tx() as c:
            live = {r[0] for r in c.execute("SELECT DISTINCT subject FROM versions WHERE deleted = 0")}
            every = {r[0] for r in c.execute("SELECT DISTINCT subject FROM versions")}
        chosen = every - live if deleted_only else every if deleted else live
        return sorted(s for s in chosen if s.startswith(prefix))

    def versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        with self._tx() as c:
            rows = self._rows(c, subject, deleted or deleted_only)
        if deleted_only:
            rows = [r for r in rows if r.deleted]
        if not rows:
            raise subject_not_found(subject)
        return [r.version for r in rows]

    def version(self, subject: str, version: int | None, deleted: bool = False) -> Version:
        with self._tx() as c:
            return self._one(c, subject, version, deleted)

    def register(self, subject: str, new: compat.ParsedSchema, normalize: bool = False) -> Version:
        """Idempotent: a schema already live under the subject returns its existing id and version."""
        with self._tx(write=True) as c:
            every = self._rows(c, subject, deleted=True)
            live = [r for r in every if not r.deleted]
            for row in live:
                if self._matches(row, new, normalize):
                    return row
            level = self._effective_level(c, subject)
            if live and level != "NONE":
                against = live if level.endswith("_TRANSITIVE") else live[-1:]
                messages = self._incompatibilities(new, against, level)
                if messages:
                    raise RegistryError(
                        INCOMPATIBLE_SCHEMA,
                        f"Schema being registered is incompatible with an earlier schema for subject "
                        f"'{subject}', details: [{', '.join(messages)}]",
                    )
            if normalize:
                found = c.execute(
                    "SELECT id, text FROM schemas WHERE normalized = ? ORDER BY id", (new.normalized,)
                )
            else:
                found = c.execute("SELECT id, text FROM schemas WHERE key = ?", (new.key,))
            hit = found.fetchone()
            if hit:
                schema_id, text = int(hit[0]), str(hit[1])
            else:
                cursor = c.execute(
                    "INSERT INTO schemas (key, normalized, text) VALUES (?, ?, ?)",
                    (new.key, new.normalized, new.text),
                )
                schema_id, text = int(cursor.lastrowid or 0), new.text
            number = (every[-1].version if every else 0) + 1
            c.execute(
                "INSERT INTO versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, number, schema_id),
            )
            return Version(subject, number, schema_id, text, False, new.key, new.normalized)

    def lookup(self, subject: str, new: compat.ParsedSchema, normalize: bool, deleted: bool) -> Version:
        """The newest version of `subject` holding this schema (40401 no subject, 40403 not under it)."""
        with self._tx() as c:
            rows = self._rows(c, subject, deleted)
            if not rows:
                raise subject_not_found(subject)
            for row in reversed(rows):
                if self._matches(row, new, normalize):
                    return row
        raise schema_not_found(f"Schema not found under subject '{subject}'")

    def delete_version(self, subject: str, version: int | None, permanent: bool) -> int:
        """Soft delete first; a permanent delete is only allowed on a soft-deleted version (40407)."""
        with self._tx(write=True) as c:
            if not permanent:
                every = self._rows(c, subject, deleted=True)
                live = [r for r in every if not r.deleted]
                if not live:
                    raise subject_not_found(subject)
                row = (
                    live[-1] if version is LATEST else next((r for r in every if r.version == version), None)
                )
                if row is None:
                    raise version_not_found(subject, version)
                if row.deleted:
                    raise RegistryError(
                        VERSION_SOFT_DELETED,
                        f"Subject '{subject}' Version {version} was soft deleted. "
                        "Set permanent=true to delete permanently",
                    )
                c.execute(
                    "UPDATE versions SET deleted = 1 WHERE subject = ? AND version = ?",
                    (subject, row.version),
                )
                return row.version
            row = self._one(c, subject, version, deleted=True)
            if not row.deleted:
                raise RegistryError(
                    VERSION_NOT_SOFT_DELETED,
                    f"Subject '{subject}' Version {row.version} was not deleted first before being "
                    "permanently deleted",
                )
            c.execute("DELETE FROM versions WHERE subject = ? AND version = ?", (subject, row.version))
            return row.version

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft delete marks every live version; permanent needs a prior soft delete (40405)."""
        with self._tx(write=True) as c:
            every = self._rows(c, subject, deleted=True)
            if not every:
                raise subject_not_found(subject)
            live = [r.version for r in every if not r.deleted]
            if not permanent:
                if not live:
                    raise RegistryError(
                        SUBJECT_SOFT_DELETED,
                        f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
                    )
                c.execute("UPDATE versions SET deleted = 1 WHERE subject = ?", (subject,))
                return live
            if live:
                raise RegistryError(
                    SUBJECT_NOT_SOFT_DELETED,
                    f"Subject '{subject}' was not deleted first before being permanently deleted",
                )
            c.execute("DELETE FROM versions WHERE subject = ?", (subject,))
            c.execute("DELETE FROM config WHERE subject = ?", (subject,))
            return [r.version for r in every]

    def test_compatibility(
        self, subject: str, new: compat.ParsedSchema, version: int | None, all_versions: bool
    ) -> list[str]:
        """Incompatibility messages of `new` against one version, or against all the level requires."""
        with self._tx() as c:
            level = self._effective_level(c, subject)
            if all_versions:
                live = self._rows(c, subject, deleted=False)
                against = live if level.endswith("_TRANSITIVE") else live[-1:]
            elif version is LATEST:
                against = self._rows(c, subject, deleted=False)[-1:]
            else:
                against = [self._one(c, subject, version, deleted=False)]
            if level == "NONE":
                return []
            return self._incompatibilities(new, against, level)

    # -- schemas by id --------------------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> str:
        """A schema by global id while some subject-version (soft-deleted ones too) still uses it: consumers
        must still decode old records after a soft delete, as with Confluent."""
        with self._tx() as c:
            hit = c.execute(
                "SELECT text FROM schemas WHERE id = ? AND EXISTS (SELECT 1 FROM versions WHERE schema_id = ?)",
                (schema_id, schema_id),
            ).fetchone()
        if not hit:
            raise schema_not_found(f"Schema {schema_id} not found")
        return str(hit[0])

    def schema_versions(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        """The subject-versions using a schema id; 40403 when none, even soft-deleted, does."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT subject, version, deleted FROM versions WHERE schema_id = ? ORDER BY subject, version",
                (schema_id,),
            ).fetchall()
        if not rows:
            raise schema_not_found(f"Schema {schema_id} not found")
        return [(r[0], r[1]) for r in rows if deleted or not r[2]]

    # -- compatibility levels -------------------------------------------------------------------------------

    def level(self, subject: str | None, default_to_global: bool = False) -> str:
        with self._tx() as c:
            own = self._level(c, subject)
            if own is not None:
                return own
            if subject is None or default_to_global:
                return self._level(c, None) or compat.DEFAULT_LEVEL
        raise RegistryError(
            SUBJECT_LEVEL_NOT_CONFIGURED,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        )

    def set_level(self, subject: str | None, level: str) -> None:
        with self._tx(write=True) as c:
            c.execute(
                "INSERT INTO config (subject, level) VALUES (?, ?) ON CONFLICT(subject) DO UPDATE SET level = excluded.level",
                (_GLOBAL if subject is None else subject, level),
            )

    def delete_level(self, subject: str | None) -> str:
        """Drop a subject's own level (global: back to the default); answers the level it had."""
        with self._tx(write=True) as c:
            previous = self._level(c, subject)
            if previous is None and subject is not None:
                raise RegistryError(
                    SUBJECT_LEVEL_NOT_CONFIGURED,
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                )
            c.execute("DELETE FROM config WHERE subject = ?", (_GLOBAL if subject is None else subject,))
        return previous or compat.DEFAULT_LEVEL
