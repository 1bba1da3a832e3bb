"""SQLite persistence of subjects, versions, schema ids (with their type and references), and, through
`Settings`, compatibility levels and modes.

One connection guarded by one lock, every operation in its own transaction (`BEGIN IMMEDIATE` for writes):
the registry is a local development service, so serializing is simpler than clever and makes id assignment
trivially unique under concurrent registrations. WAL mode keeps readers in other processes (e.g. an
inspection with the sqlite3 shell) from blocking it. Schema rows are never deleted, so an id, once given
out, always names the same schema — also after a permanent delete and a re-registration. Only IMPORT mode
may give one schema a second id (Confluent allows it), so ids are unique, schema keys are not.

Ids are per schema context (`contexts.py`), as with Confluent: a schema row belongs to one context and
`sid` is its id there; `id` is only the row's own key, which versions point to. Subjects are stored in
their normal qualified spelling.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import compat, contexts
from .compat import ParsedSchema, Reference, Resolved
from .errors import (
    INCOMPATIBLE_SCHEMA,
    INVALID_SCHEMA,
    OPERATION_NOT_PERMITTED,
    REFERENCE_EXISTS,
    STORE_ERROR,
    SUBJECT_NOT_SOFT_DELETED,
    SUBJECT_SOFT_DELETED,
    VERSION_NOT_SOFT_DELETED,
    VERSION_SOFT_DELETED,
    RegistryError,
    schema_not_found,
    subject_not_found,
    version_not_found,
)
from .limits import Limits
from .settings import Settings

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    normalized TEXT NOT NULL,
    text TEXT NOT NULL,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    refs TEXT NOT NULL DEFAULT '[]',
    context TEXT NOT NULL DEFAULT '.',
    sid INTEGER
);
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
CREATE TABLE IF NOT EXISTS modes (
    subject TEXT PRIMARY KEY,
    mode TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contexts (
    name TEXT PRIMARY KEY
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS schemas_normalized ON schemas(context, normalized);
CREATE INDEX IF NOT EXISTS schemas_key ON schemas(context, key);
CREATE UNIQUE INDEX IF NOT EXISTS schemas_sid ON schemas(context, sid);
"""
#: a file from before contexts: every schema is in the default context, its id unchanged
_ADD_CONTEXTS = """
DROP INDEX IF EXISTS schemas_normalized;
DROP INDEX IF EXISTS schemas_key;
ALTER TABLE schemas ADD COLUMN context TEXT NOT NULL DEFAULT '.';
ALTER TABLE schemas ADD COLUMN sid INTEGER;
UPDATE schemas SET sid = id;
"""
#: a file of the first release: `key` was unique (IMPORT may now give one schema two ids) and the type and
#: references columns were missing; its rows are copied over as Avro schemas without references
_UPGRADE = """
ALTER TABLE schemas RENAME TO schemas_v1;
CREATE TABLE schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    normalized TEXT NOT NULL,
    text TEXT NOT NULL,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    refs TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO schemas (id, key, normalized, text) SELECT id, key, normalized, text FROM schemas_v1;
DROP TABLE schemas_v1;
"""
#: stored schemas were checked against the limits of the day: re-parsing them is not limited again
_STORED = Limits(1 << 62, 1 << 20, 1 << 40, 1 << 40)
#: references nested deeper than this are refused (they would also be a cycle, which a version cannot form)
_MAX_REFERENCE_DEPTH = 32


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
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()

    def to_json(self) -> dict[str, object]:
        """As Confluent answers: `schemaType` only when not AVRO, `references` only when there are some."""
        body: dict[str, object] = {"subject": self.subject, "version": self.version, "id": self.id}
        return {**body, **schema_fields(self.schema, self.schema_type, self.references)}


def schema_fields(text: str, schema_type: str, references: tuple[Reference, ...]) -> dict[str, object]:
    body: dict[str, object] = {}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    if references:
        body["references"] = [r.to_json() for r in references]
    body["schema"] = text
    return body


def _refs(raw: str) -> tuple[Reference, ...]:
    return tuple(Reference(r["name"], r["subject"], r["version"]) for r in json.loads(raw or "[]"))


class Store(Settings):
    """All registry state; every public method is one atomic transaction."""

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        """`busy_timeout`: seconds to wait for another process holding the file before answering 50001."""
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        present = {r[1] for r in self._conn.execute("PRAGMA table_info(schemas)")}
        if present and "refs" not in present:
            self._conn.executescript("BEGIN IMMEDIATE;" + _UPGRADE + "COMMIT;")
        if present and "sid" not in present:
            self._conn.executescript("BEGIN IMMEDIATE;" + _ADD_CONTEXTS + "COMMIT;")
        self._conn.executescript(_DDL + _INDEXES)
        self._parsed: dict[tuple[str, int], ParsedSchema] = {}

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
            "SELECT v.version, s.sid, s.text, v.deleted, s.key, s.normalized, s.schema_type, s.refs "
            "FROM versions v JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? ORDER BY v.version"
        )
        rows = [
            Version(subject, r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], _refs(r[7]))
            for r in c.execute(sql, (subject,))
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

    def _parsed_schema(self, c: sqlite3.Connection, row: Version) -> ParsedSchema:
        key = (contexts.context_of(row.subject), row.id)
        if key not in self._parsed:
            self._parsed[key] = compat.parse(
                row.schema, row.schema_type, [r.to_json() for r in row.references], _STORED,
                self._resolve(c, row.references, row.subject),
            )
        return self._parsed[key]

    def _resolve(
        self, c: sqlite3.Connection, refs: tuple[Reference, ...], parent: str, depth: int = 0
    ) -> list[Resolved]:
        """The schemas `refs` name, each one's own references first (42201 when one is missing). A
        reference without a context names a subject in the context of `parent`, the subject referring."""
        if depth > _MAX_REFERENCE_DEPTH:
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: references nested deeper than {_MAX_REFERENCE_DEPTH}")
        out: list[Resolved] = []
        for ref in refs:
            target = contexts.with_parent(ref.subject, parent)
            rows = self._rows(c, target, deleted=True)
            live = [r for r in rows if not r.deleted]
            row = (live[-1] if live else None) if ref.version == -1 else next(
                (r for r in rows if r.version == ref.version), None)
            if row is None:
                raise RegistryError(
                    INVALID_SCHEMA,
                    f"Invalid schema: reference '{ref.name}' to subject '{ref.subject}' version {ref.version} "
                    "not found",
                )
            for dep in self._resolve(c, row.references, target, depth + 1) + [Resolved(row.schema, row.schema_type)]:
                if dep not in out:
                    out.append(dep)
        return out

    def _referrers(self, c: sqlite3.Connection, subject: str, version: int) -> list[int]:
        """Ids of the schemas that reference `subject` `version` and that a live version still uses."""
        found = c.execute(
            "SELECT DISTINCT s.id, s.sid, s.refs, s.context FROM schemas s JOIN versions v ON v.schema_id = s.id "
            "WHERE v.deleted = 0 AND s.refs != '[]' ORDER BY s.sid"
        )
        return [
            int(sid) for _, sid, raw, context in found
            if any(
                contexts.with_parent(r.subject, contexts.Qualified(context, "").subject) == subject
                and r.version == version
                for r in _refs(raw)
            )
        ]

    def _refuse_referenced(self, c: sqlite3.Connection, subject: str, rows: list[Version]) -> None:
        for row in rows:
            if self._referrers(c, subject, row.version):
                raise RegistryError(
                    REFERENCE_EXISTS,
                    f"One or more references exist to the schema {{subject={subject}, version={row.version}}}",
                )

    def _incompatibilities(
        self, c: sqlite3.Connection, new: ParsedSchema, against: list[Version], level: str
    ) -> list[str]:
        for row in reversed(against):  # newest first, the first incompatible version answers (as Confluent)
            found = compat.check(new, self._parsed_schema(c, row), row.version, level)
            if found:
                return found + [
                    f"{{oldSchemaVersion: {row.version}}}", f"{{oldSchema: '{row.schema}'}}",
                    f"{{compatibility: '{level}'}}",
                ]
        return []

    @staticmethod
    def _matches(row: Version, new: ParsedSchema, normalize: bool) -> bool:
        return row.normalized == new.normalized if normalize else row.key == new.key

    # -- subjects and versions ------------------------------------------------------------------------------

    def parse(
        self, text: object, schema_type: object, references: object, limits: Limits, subject: str = ""
    ) -> ParsedSchema:
        """Validate a schema from a request, its references resolved against the stored versions (in the
        context of `subject` when they name none)."""
        refs = compat.references_of(references)
        with self._tx() as c:
            resolved = self._resolve(c, refs, subject)
        return compat.parse(text, schema_type, references, limits, resolved)

    def subjects(self, deleted: bool = False, deleted_only: bool = False, prefix: str = "") -> list[str]:
        with self._tx() as c:
            live = {r[0] for r in c.execute("SELECT DISTINCT subject FROM versions WHERE deleted = 0")}
            every = {r[0] for r in c.execute("SELECT DISTINCT subject FROM versions")}
        chosen = every - live if deleted_only else every if deleted else live
        return sorted(s for s in chosen if contexts.in_prefix(s, prefix))

    def versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        with self._tx() as c:
            rows = self._rows(c, subject, deleted or deleted_only)
        if deleted_only:
            rows = [r for r in rows if r.deleted]
        if not rows:
            raise subject_not_found(subject)
        return [r.version for r in rows]

    def _other_contexts(self, c: sqlite3.Connection, subject: str) -> list[str]:
        """An unqualified subject as each non-default context would qualify it (Confluent's "using
        contexts" lookups: a client that knows only `topic-value` finds `:.ctx:topic-value`)."""
        if contexts.context_of(subject) != contexts.DEFAULT:
            return []
        names = [r[0] for r in c.execute("SELECT name FROM contexts WHERE name != ? ORDER BY name", (contexts.DEFAULT,))]
        return [contexts.Qualified(name, subject).subject for name in names]

    def version(self, subject: str, version: int | None, deleted: bool = False) -> Version:
        """One version; an unqualified subject absent from the default context is looked for in the others."""
        with self._tx() as c:
            try:
                return self._one(c, subject, version, deleted)
            except RegistryError as missing:
                for other in self._other_contexts(c, subject):
                    try:
                        return self._one(c, other, version, deleted)
                    except RegistryError:
                        continue
                raise missing

    def all_versions(self, prefix: str = "", deleted: bool = False, latest_only: bool = False) -> list[Version]:
        """`GET /schemas`: every (live) subject-version whose subject is in `prefix`, by subject."""
        with self._tx() as c:
            names = [r[0] for r in c.execute("SELECT DISTINCT subject FROM versions ORDER BY subject")]
            out: list[Version] = []
            for name in names:
                if contexts.in_prefix(name, prefix):
                    rows = self._rows(c, name, deleted)
                    out += rows[-1:] if latest_only else rows
        return out

    def register(
        self, subject: str, new: ParsedSchema, normalize: bool = False,
        schema_id: int | None = None, version: int | None = None,
    ) -> Version:
        """Idempotent: a schema already live under the subject returns its existing id and version.

        `schema_id` may only be given in IMPORT mode (which also skips the compatibility check); `version`
        outside IMPORT only as the number the version would get anyway. Registering the content of a
        soft-deleted version removes that version for good, as Confluent does.
        """
        with self._tx(write=True) as c:
            importing = self._writable(c, subject) == "IMPORT"
            every = self._rows(c, subject, deleted=True)
            live = [r for r in every if not r.deleted]
            if schema_id is not None and not importing:
                raise RegistryError(
                    OPERATION_NOT_PERMITTED,
                    f"Subject {subject} is not in import mode: a schema id may only be given in IMPORT mode",
                )
            for row in live:
                if self._matches(row, new, normalize) and version in (None, row.version):
                    if schema_id is not None and schema_id != row.id:
                        raise RegistryError(
                            OPERATION_NOT_PERMITTED,
                            f"Schema already registered under subject {subject} with id {row.id}, not {schema_id}",
                        )
                    return row
            if importing and schema_id is None:
                raise RegistryError(
                    OPERATION_NOT_PERMITTED, f"Subject {subject} is in import mode: a schema id must be given"
                )
            number = (every[-1].version if every else 0) + 1
            if version is not None and version != number:
                taken = next((r for r in every if r.version == version), None)
                if not importing or (taken is not None and not taken.deleted):
                    raise RegistryError(
                        OPERATION_NOT_PERMITTED,
                        f"Version {version} of subject {subject} cannot be written: "
                        + ("it holds another schema" if taken else f"the next version is {number}"),
                    )
                if taken is not None:  # a soft-deleted version is overwritten by an import
                    c.execute("DELETE FROM versions WHERE subject = ? AND version = ?", (subject, version))
                number = version
            level = self._effective_level(c, subject)
            if live and level != "NONE" and not importing:
                against = live if level.endswith("_TRANSITIVE") else live[-1:]
                messages = self._incompatibilities(c, new, against, level)
                if messages:
                    raise RegistryError(
                        INCOMPATIBLE_SCHEMA,
                        f"Schema being registered is incompatible with an earlier schema for subject "
                        f"'{subject}', details: [{', '.join(messages)}]",
                    )
            context = contexts.context_of(subject)
            row_id, sid, text = self._schema_row(c, new, normalize, schema_id, context)
            c.execute(
                "INSERT INTO versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, number, row_id),
            )
            c.execute(
                "DELETE FROM versions WHERE subject = ? AND schema_id = ? AND deleted = 1",
                (subject, row_id),
            )
            c.execute("INSERT OR IGNORE INTO contexts (name) VALUES (?)", (context,))
            return Version(
                subject, number, sid, text, False, new.key, new.normalized, new.schema_type, new.references
            )

    def _schema_row(
        self, c: sqlite3.Connection, new: ParsedSchema, normalize: bool, schema_id: int | None, context: str
    ) -> tuple[int, int, str]:
        """(row, id in `context`, text) of `new`: an existing row of the context, or a new one taking the
        context's next id (`schema_id` when importing)."""
        if normalize:
            found = c.execute(
                "SELECT id, sid, text FROM schemas WHERE context = ? AND normalized = ? ORDER BY sid",
                (context, new.normalized),
            )
        else:
            found = c.execute(
                "SELECT id, sid, text FROM schemas WHERE context = ? AND key = ? ORDER BY sid", (context, new.key)
            )
        hit = found.fetchone()
        if schema_id is not None:
            at_id = c.execute(
                "SELECT id, key, text FROM schemas WHERE context = ? AND sid = ?", (context, schema_id)
            ).fetchone()
            if at_id is not None and at_id[1] != new.key:
                raise RegistryError(
                    OPERATION_NOT_PERMITTED, "Overwrite schema for the same ID is not permitted."
                )
            if at_id is not None:
                return int(at_id[0]), schema_id, str(at_id[2])
            sid = schema_id
        elif hit:
            return int(hit[0]), int(hit[1]), str(hit[2])
        else:
            top = c.execute("SELECT MAX(sid) FROM schemas WHERE context = ?", (context,)).fetchone()[0]
            sid = int(top or 0) + 1
        cursor = c.execute(
            "INSERT INTO schemas (key, normalized, text, schema_type, refs, context, sid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (new.key, new.normalized, new.text, new.schema_type, _refs_json(new), context, sid),
        )
        return int(cursor.lastrowid or 0), sid, new.text

    def lookup(self, subject: str, new: ParsedSchema, normalize: bool, deleted: bool) -> Version:
        """The newest version of `subject` holding this schema (40401 no subject, 40403 not under it)."""
        with self._tx() as c:
            rows = self._rows(c, subject, deleted)
            # as Confluent: the subject's own context first, then (unqualified) the same name in the others
            for candidates in [rows] + [self._rows(c, o, deleted) for o in self._other_contexts(c, subject)]:
                for row in reversed(candidates):
                    if self._matches(row, new, normalize):
                        return row
            if not rows:
                raise subject_not_found(subject)
        raise schema_not_found(f"Schema not found under subject '{subject}'")

    def referenced_by(self, subject: str, version: int | None) -> list[int]:
        with self._tx() as c:
            row = self._one(c, subject, version, deleted=False)
            return self._referrers(c, subject, row.version)

    def delete_version(self, subject: str, version: int | None, permanent: bool) -> int:
        """Soft delete first; a permanent delete is only allowed on a soft-deleted version (40407). A version
        another live schema references is refused (42206). When the last version of a subject is gone for
        good, so are its level and mode."""
        with self._tx(write=True) as c:
            self._writable(c, subject)
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
                self._refuse_referenced(c, subject, [row])
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
            self._refuse_referenced(c, subject, [row])
            c.execute("DELETE FROM versions WHERE subject = ? AND version = ?", (subject, row.version))
            if not self._rows(c, subject, deleted=True):
                self._forget_subject_settings(c, subject)
            return row.version

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft delete marks every live version; permanent needs a prior soft delete (40405)."""
        with self._tx(write=True) as c:
            self._writable(c, subject)
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
                self._refuse_referenced(c, subject, every)
                c.execute("UPDATE versions SET deleted = 1 WHERE subject = ?", (subject,))
                return live
            if live:
                raise RegistryError(
                    SUBJECT_NOT_SOFT_DELETED,
                    f"Subject '{subject}' was not deleted first before being permanently deleted",
                )
            self._refuse_referenced(c, subject, every)
            c.execute("DELETE FROM versions WHERE subject = ?", (subject,))
            self._forget_subject_settings(c, subject)
            return [r.version for r in every]

    def test_compatibility(
        self, subject: str, new: ParsedSchema, version: int | None, all_versions: bool
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
            return self._incompatibilities(c, new, against, level)

    # -- schemas by id --------------------------------------------------------------------------------------

    def _used(self, c: sqlite3.Connection, context: str, schema_id: int, subject: str | None) -> int | None:
        """The row of id `schema_id` in `context` while a subject-version (`subject`'s, when given) uses it."""
        hit = c.execute(
            "SELECT s.id FROM schemas s WHERE s.context = ? AND s.sid = ? AND EXISTS "
            "(SELECT 1 FROM versions v WHERE v.schema_id = s.id AND (? IS NULL OR v.subject = ?))",
            (context, schema_id, subject, subject),
        ).fetchone()
        return int(hit[0]) if hit else None

    def _row_by_id(self, c: sqlite3.Connection, schema_id: int, subject: str | None) -> tuple[int, str]:
        """(row, context) of a schema id asked for with an optional `subject`, found as Confluent does: in
        the subject's context (the default one without a subject); for an unqualified subject that does not
        use the id there, in the first other context where that subject uses it, else any use in the
        default context. 40403 when none is found."""
        q = contexts.split(subject or "")
        if subject is None or not q.name or q.context != contexts.DEFAULT:
            row = self._used(c, q.context, schema_id, q.subject if q.name else None)
            if row is None:
                raise schema_not_found(f"Schema {schema_id} not found")
            return row, q.context
        row = self._used(c, contexts.DEFAULT, schema_id, q.name)
        if row is not None:
            return row, contexts.DEFAULT
        for (name,) in c.execute("SELECT name FROM contexts ORDER BY name").fetchall():
            row = self._used(c, name, schema_id, contexts.Qualified(name, q.name).subject)
            if row is not None:
                return row, name
        row = self._used(c, contexts.DEFAULT, schema_id, None)
        if row is None:
            raise schema_not_found(f"Schema {schema_id} not found")
        return row, contexts.DEFAULT

    def schema_by_id(
        self, schema_id: int, fetch_max_id: bool = False, subject: str | None = None
    ) -> dict[str, object]:
        """A schema by id while some subject-version (soft-deleted ones too) still uses it: consumers must
        still decode old records after a soft delete, as with Confluent. `maxId`: of the same context."""
        with self._tx() as c:
            row, context = self._row_by_id(c, schema_id, subject)
            hit = c.execute("SELECT text, schema_type, refs FROM schemas WHERE id = ?", (row,)).fetchone()
            top = c.execute("SELECT MAX(sid) FROM schemas WHERE context = ?", (context,)).fetchone()[0]
        body = schema_fields(str(hit[0]), str(hit[1]), _refs(hit[2]))
        if fetch_max_id:
            body["maxId"] = int(top or 0)
        return body

    def schema_versions(
        self, schema_id: int, deleted: bool = False, subject: str | None = None
    ) -> list[tuple[str, int]]:
        """The subject-versions using a schema id (in the context `subject` selects, as for `schema_by_id`);
        40403 when none, even soft-deleted, does."""
        with self._tx() as c:
            row, _ = self._row_by_id(c, schema_id, subject)
            rows = c.execute(
                "SELECT subject, version, deleted FROM versions WHERE schema_id = ? ORDER BY subject, version",
                (row,),
            ).fetchall()
        return [(r[0], r[1]) for r in rows if deleted or not r[2]]

    def context_names(self) -> list[str]:
        """The default context, then every context a subject was ever registered in (Confluent keeps a
        context once created)."""
        with self._tx() as c:
            names = {r[0] for r in c.execute("SELECT name FROM contexts")}
        return [contexts.DEFAULT] + sorted(names - {contexts.DEFAULT})


def _refs_json(new: ParsedSchema) -> str:
    return json.dumps([r.to_json() for r in new.references])
