"""Compatibility levels and modes, global and per subject: the `config` and `modes` tables of the store.

A mixin of `Store`: every public method is one transaction of the store's connection. A subject of a
non-default context without a level (mode) of its own has its context's (kept under `:.ctx:`), then the
global one, as with Confluent.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from . import compat, contexts
from .errors import (
    INVALID_MODE,
    OPERATION_NOT_PERMITTED,
    SUBJECT_LEVEL_MODE_NOT_CONFIGURED,
    SUBJECT_LEVEL_NOT_CONFIGURED,
    RegistryError,
)

#: the key of the global level and mode in `config` and `modes` (Confluent subjects are never empty)
GLOBAL = ""
MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")


class Settings:
    def _tx(self, write: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # -- reading helpers (called inside a transaction) ------------------------------------------------------

    def _mode(self, c: sqlite3.Connection, subject: str | None) -> str | None:
        row = c.execute("SELECT mode FROM modes WHERE subject = ?", (GLOBAL if subject is None else subject,))
        found = row.fetchone()
        return found[0] if found else None

    def _context_mode(self, c: sqlite3.Connection, subject: str) -> str | None:
        key = contexts.split(subject).context_key
        return self._mode(c, key) if key and key != subject else None

    def _effective_mode(self, c: sqlite3.Connection, subject: str) -> str:
        glob = self._mode(c, None)
        if glob == "READONLY_OVERRIDE":
            return glob
        return self._mode(c, subject) or self._context_mode(c, subject) or glob or "READWRITE"

    def _writable(self, c: sqlite3.Connection, subject: str) -> str:
        """The subject's mode, or 42205 when it is read-only."""
        mode = self._effective_mode(c, subject)
        if mode.startswith("READONLY"):
            raise RegistryError(OPERATION_NOT_PERMITTED, f"Subject {subject} is in read-only mode")
        return mode

    def _forget_subject_settings(self, c: sqlite3.Connection, subject: str) -> None:
        c.execute("DELETE FROM config WHERE subject = ?", (subject,))
        c.execute("DELETE FROM modes WHERE subject = ?", (subject,))

    def _level(self, c: sqlite3.Connection, subject: str | None) -> str | None:
        found = c.execute(
            "SELECT level FROM config WHERE subject = ?", (GLOBAL if subject is None else subject,)
        )
        row = found.fetchone()
        return row[0] if row else None

    def _context_level(self, c: sqlite3.Connection, subject: str) -> str | None:
        key = contexts.split(subject).context_key
        return self._level(c, key) if key and key != subject else None

    def _effective_level(self, c: sqlite3.Connection, subject: str) -> str:
        return (
            self._level(c, subject) or self._context_level(c, subject) or self._level(c, None)
            or compat.DEFAULT_LEVEL
        )

    # -- modes ----------------------------------------------------------------------------------------------

    def mode(self, subject: str | None, default_to_global: bool = False) -> str:
        with self._tx() as c:
            if subject is None:
                return self._mode(c, None) or "READWRITE"
            own = self._mode(c, subject)
            glob = self._mode(c, None)
            if glob == "READONLY_OVERRIDE":
                return glob
            if own is not None:
                return own
            if default_to_global:
                return self._context_mode(c, subject) or glob or "READWRITE"
        raise RegistryError(
            SUBJECT_LEVEL_MODE_NOT_CONFIGURED, f"Subject '{subject}' does not have subject-level mode configured"
        )

    def set_mode(self, subject: str | None, mode: object, force: bool = False) -> str | None:
        """IMPORT needs an empty registry (or subject) unless `force`, as with Confluent; no mode (null)
        removes the one set. FORWARD (Confluent's cluster-linking mode) is not supported: 42204."""
        if mode is None:
            with self._tx(write=True) as c:
                c.execute("DELETE FROM modes WHERE subject = ?", (GLOBAL if subject is None else subject,))
            return None
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise RegistryError(INVALID_MODE, f"Invalid mode {mode!r}. Valid values are: {', '.join(MODES)}")
        mode = mode.upper()
        with self._tx(write=True) as c:
            if mode == "IMPORT" and not force:
                live = [r[0] for r in c.execute("SELECT DISTINCT subject FROM versions WHERE deleted = 0")]
                scope = contexts.split(subject or "")
                if subject is None:
                    found = live
                elif scope.name:
                    found = [s for s in live if s == subject]
                else:  # a context: its subjects
                    found = [s for s in live if contexts.context_of(s) == scope.context]
                if found:
                    raise RegistryError(
                        OPERATION_NOT_PERMITTED,
                        "Cannot import since found existing subjects" + (f" ({subject})" if subject else ""),
                    )
            c.execute(
                "INSERT INTO modes (subject, mode) VALUES (?, ?) ON CONFLICT(subject) DO UPDATE SET mode = excluded.mode",
                (GLOBAL if subject is None else subject, mode),
            )
        return mode

    def delete_mode(self, subject: str | None, recursive: bool = False) -> str | None:
        """Drop a subject's own mode, or the global one (`recursive`: every subject's too); answers the
        mode it had (null for a global mode never set)."""
        with self._tx(write=True) as c:
            previous = self._mode(c, subject)
            if previous is None and subject is not None:
                raise RegistryError(
                    SUBJECT_LEVEL_MODE_NOT_CONFIGURED,
                    f"Subject '{subject}' does not have subject-level mode configured",
                )
            if subject is None and recursive:
                c.execute("DELETE FROM modes")
            c.execute("DELETE FROM modes WHERE subject = ?", (GLOBAL if subject is None else subject,))
        return previous

    # -- compatibility levels -------------------------------------------------------------------------------

    def level(self, subject: str | None, default_to_global: bool = False) -> str:
        with self._tx() as c:
            own = self._level(c, subject)
            if own is not None:
                return own
            if subject is None or default_to_global:
                context = None if subject is None else self._context_level(c, subject)
                return context or self._level(c, None) or compat.DEFAULT_LEVEL
        raise RegistryError(
            SUBJECT_LEVEL_NOT_CONFIGURED,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        )

    def set_level(self, subject: str | None, level: str) -> None:
        with self._tx(write=True) as c:
            c.execute(
                "INSERT INTO config (subject, level) VALUES (?, ?) ON CONFLICT(subject) DO UPDATE SET level = excluded.level",
                (GLOBAL if subject is None else subject, level),
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
            c.execute("DELETE FROM config WHERE subject = ?", (GLOBAL if subject is None else subject,))
        return previous or compat.DEFAULT_LEVEL
