"""One hierarchy of typed errors for the whole package.

Every error carries structured fields (not just a message) so that the CLI, Dagster ops and tests can act on
them; each class names the CLI exit code it maps to (SPEC §8): 1 runtime failure, 2 invalid input,
3 refused by a safety rule, 4 drift found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from migrate_assets.redact import redact_text


class MigrateAssetsError(Exception):
    """Base of every error this package raises on purpose. Its message never holds a secret: every string
    argument passes `redact_text` (URL passwords, `password=` pairs, secrets the process has seen)."""

    exit_code: int = 1
    #: transient errors may be retried by a saga or a Dagster RetryPolicy; semantic ones never are
    transient: bool = False

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": str(self)}


# ---------------------------------------------------------------------------------------------------------
# exit 2: invalid input
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: where it is and what was expected."""

    file: str
    message: str
    key: str = ""
    line: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact_text(self.message))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


class InvalidInputError(MigrateAssetsError):
    """Input (config, spec, change file, migration files, CLI usage) is wrong. Nothing was changed."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem] | str, *, file: str = "", key: str = "") -> None:
        if isinstance(problems, str):
            problems = [Problem(file=file or "<input>", key=key, message=problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def to_dict(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": str(self),
            "problems": [
                {"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in self.problems
            ],
        }


class ConfigError(InvalidInputError):
    """`migrate.yaml` is missing, unreadable or invalid."""


class SpecError(InvalidInputError):
    """A table spec file is invalid."""


class MigrationFileError(InvalidInputError):
    """The migrations directory holds invalid or conflicting files."""


class ChangeFileError(InvalidInputError):
    """An expand–contract / evolution change file is invalid."""


class UsageError(InvalidInputError):
    """The command line is wrong."""


class UnsupportedTypeError(InvalidInputError):
    """A type has no mapping in some layer of the pipeline."""


# ---------------------------------------------------------------------------------------------------------
# exit 3: refused by a safety rule
# ---------------------------------------------------------------------------------------------------------


class SafetyRefusal(MigrateAssetsError):
    """A safety rule refused the operation before anything was changed."""

    exit_code = 3


class BreakingChangeBlocked(SafetyRefusal):
    def __init__(self, changes: Iterable[str]) -> None:
        self.changes = tuple(changes)
        super().__init__(
            "breaking changes blocked by on_breaking_change=block:\n" + "\n".join(f"  - {c}" for c in self.changes)
        )


class StalePlanError(SafetyRefusal):
    def __init__(self, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            f"stale plan: it was computed from schema fingerprint {expected}, the database now has {actual}"
        )


class ChecksumMismatchError(SafetyRefusal):
    def __init__(self, versions: Iterable[str]) -> None:
        self.versions = tuple(versions)
        super().__init__(
            "applied migrations changed on disk (checksum mismatch): "
            + ", ".join(self.versions)
            + "; revert the edit or run `migrate-assets migrations repair`"
        )


class IncompatibleSchemaError(SafetyRefusal):
    def __init__(self, subject: str, level: str, messages: Iterable[str]) -> None:
        self.subject, self.level, self.messages = subject, level, tuple(messages)
        super().__init__(
            f"schema for subject {subject!r} is not {level}-compatible: " + "; ".join(self.messages)
        )


class NotSafeToContractError(SafetyRefusal):
    pass


class IrreversibleChangeError(SafetyRefusal):
    pass


class OutOfOrderError(SafetyRefusal):
    pass


class AlreadyAppliedError(SafetyRefusal):
    pass


# ---------------------------------------------------------------------------------------------------------
# exit 1: runtime failure
# ---------------------------------------------------------------------------------------------------------


class RuntimeFailure(MigrateAssetsError):
    exit_code = 1


class LockNotAcquiredError(RuntimeFailure):
    """Another migration run holds the advisory lock past `lock_wait`."""

    def __init__(self, key: int, waited: float, holder: str = "") -> None:
        self.key, self.waited, self.holder = key, waited, holder
        msg = f"another migration run holds the lock (advisory lock {key}) after waiting {waited:.1f}s"
        if holder:
            msg += f": held by {holder}"
        super().__init__(msg)


class TransientError(RuntimeFailure):
    """Worth retrying: connection refused, HTTP 5xx/409, lock timeout, Iceberg commit conflict."""

    transient = True


class LayerUnreachableError(TransientError):
    def __init__(self, layer: str, detail: str) -> None:
        self.layer, self.detail = str(layer), detail  # a plain str also when given an evolution `Layer`
        super().__init__(f"{layer} unreachable: {detail}")


class MigrationFailedError(RuntimeFailure):
    """A migration's SQL failed; nothing of it (nor its state row) was committed."""

    def __init__(self, file: str, message: str, position: int | None = None) -> None:
        self.file, self.position = file, position
        where = f"{file}" + (f" (position {position})" if position else "")
        super().__init__(f"migration {where} failed: {message}")


class StackError(RuntimeFailure):
    """A part of the local stack failed to start or stop."""

    def __init__(self, part: str, message: str, log_tail: str = "") -> None:
        self.part, self.log_tail = part, log_tail
        text = f"{part}: {message}"
        if log_tail:
            text += "\n--- last lines of its log ---\n" + log_tail
        super().__init__(text)


class EvolutionFailedError(RuntimeFailure):
    def __init__(self, run_id: str, step: str, message: str) -> None:
        self.run_id, self.step = run_id, step
        super().__init__(f"evolution {run_id} failed at {step}: {message}")


class RunLockedError(SafetyRefusal):
    """Another process is working on the same evolution run (its per-run advisory lock is held)."""

    def __init__(self, run_id: str, holder: str = "") -> None:
        self.run_id, self.holder = run_id, holder
        who = f"held by {holder}" if holder else "held by another session"
        super().__init__(f"evolution run {run_id} is in use by another process ({who}); nothing was changed; "
                         "wait for it to finish, or end that process")

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": str(self), "run_id": self.run_id, "holder": self.holder}


class RunNotResumableError(SafetyRefusal):
    """`--resume` of a run whose undo has begun (rolled back, deliberately or by compensation)."""

    def __init__(self, run_id: str, status: str, detail: str = "") -> None:
        self.run_id, self.status = run_id, status
        super().__init__(f"evolution run {run_id} cannot be resumed: it is {status}{detail}; nothing was changed; "
                         f"to make the change again, run `migrate-assets evolve CHANGE_FILE` (a new run)")


# ---------------------------------------------------------------------------------------------------------
# exit 4: drift
# ---------------------------------------------------------------------------------------------------------


class DriftError(MigrateAssetsError):
    exit_code = 4


@dataclass
class ErrorReport:
    """What the CLI prints for an error, in every format."""

    error: MigrateAssetsError
    extra: dict[str, object] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# added by the declarative schema area (issue 3)
# ---------------------------------------------------------------------------------------------------------


class UnsafeChangeRefused(SafetyRefusal):
    """A planned change cannot be executed safely (e.g. a NOT NULL column without default on a table with
    rows); the reasons name each change. Nothing was changed."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("refused, nothing was changed:\n" + "\n".join(f"  - {r}" for r in self.reasons))


class ExpandContractRequired(SafetyRefusal):
    """on_breaking_change=expand_contract: breaking column changes must run as expand–contract operations."""

    def __init__(self, changes: Iterable[str]) -> None:
        self.changes = tuple(changes)
        super().__init__(
            "on_breaking_change=expand_contract: these breaking column changes must go through "
            "`migrate-assets expand CHANGE_FILE` (expand–contract), not a direct apply; nothing was changed:\n"
            + "\n".join(f"  - {c}" for c in self.changes)
        )


class LockTimeoutError(TransientError):
    """DDL could not get its lock within `lock_timeout`, on every retry (SQLSTATE 55P03)."""

    def __init__(self, table: str, lock_timeout: float, attempts: int, statement: str, holders: str = "") -> None:
        self.table, self.lock_timeout, self.attempts, self.statement = table, lock_timeout, attempts, statement
        msg = (
            f"lock timeout: could not lock {table} within lock_timeout={lock_timeout:g}s after {attempts} "
            f"attempt(s); another session holds a conflicting lock"
        )
        if holders:
            msg += f" ({holders})"
        msg += f"; nothing of the transactional part was changed (statement: {statement})"
        super().__init__(msg)


# ---------------------------------------------------------------------------------------------------------
# expand–contract (appended)
# ---------------------------------------------------------------------------------------------------------


class ExpandConflictError(SafetyRefusal):
    """Another change is already expanded on the table (one active expand–contract change per table)."""

    def __init__(self, table: str, active_fingerprint: str, source: str = "") -> None:
        self.table, self.active_fingerprint, self.source = table, active_fingerprint, source
        extra = f" from {source}" if source else ""
        super().__init__(
            f"{table} already has an active expand–contract change {active_fingerprint}{extra}; "
            "contract or abort it first"
        )


class ExpandStateError(SafetyRefusal):
    """The requested phase transition is impossible (e.g. contract before expand, abort after contract)."""


class PlanMismatchError(SafetyRefusal):
    """A stored plan no longer matches what the spec files ask for; re-run `plan`."""

    def __init__(self, file: str, detail: str) -> None:
        self.file, self.detail = file, detail
        super().__init__(f"stored plan {file} no longer matches the spec files ({detail}); run `migrate-assets plan` again")


class ExpandFailedError(RuntimeFailure):
    """A statement of expand, contract or abort failed; its transaction was rolled back."""

    def __init__(self, what: str, message: str, sqlstate: str | None = None) -> None:
        self.what, self.sqlstate = what, sqlstate
        super().__init__(f"{what} failed, its transaction was rolled back: {message}")


# ---------------------------------------------------------------------------------------------------------
# layer adapters (migrate_assets.resources, appended)
# ---------------------------------------------------------------------------------------------------------


class LayerObjectNotFoundError(RuntimeFailure):
    """A named object a layer adapter was asked about does not exist (not retryable: waiting will not help)."""

    def __init__(self, layer: str, kind: str, name: str, detail: str = "") -> None:
        self.layer, self.kind, self.name = str(layer), kind, name
        super().__init__(f"{layer}: {kind} {name!r} not found" + (f" ({detail})" if detail else ""))


class ConnectorNotFoundError(LayerObjectNotFoundError):
    """Kafka Connect answered 404 for a connector."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__("connector", "connector", name, detail)


class LakehouseTableNotFoundError(LayerObjectNotFoundError):
    def __init__(self, identifier: str) -> None:
        super().__init__("lakehouse", "Iceberg table", identifier)


class InvalidLakehouseUpdateError(SafetyRefusal):
    """An Iceberg schema update (or restore target) is invalid; nothing was committed."""

    def __init__(self, identifier: str, reasons: Iterable[str]) -> None:
        self.identifier, self.reasons = identifier, tuple(reasons)
        super().__init__(f"invalid schema update for Iceberg table {identifier}: " + "; ".join(self.reasons))


class LayerRequestError(RuntimeFailure):
    """A layer refused a request for a reason retrying cannot fix (HTTP 4xx other than 404/409, SQL error)."""

    def __init__(self, layer: str, message: str, status: int | None = None, code: str | None = None) -> None:
        self.layer, self.status, self.code = str(layer), status, code
        super().__init__(f"{layer}: {message}")


# ---------------------------------------------------------------------------------------------------------
# undo (issue 14: undo never loses data)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataLoss:
    """What one undo step would lose: `count` non-null values of a column, or rows of a table (`column` "")."""

    layer: str
    table: str
    column: str
    count: int
    #: how the values are lost when not by a drop, e.g. "changed by the cast back to integer"
    how: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", str(self.layer))  # a plain str also when given an evolution `Layer`

    def __str__(self) -> str:
        if self.how:
            return f"{self.layer}: column {self.table}.{self.column}: {self.count} value(s) {self.how}"
        if self.column:
            return f"{self.layer}: column {self.table}.{self.column} holds {self.count} non-null value(s)"
        return f"{self.layer}: table {self.table} holds {self.count} row(s)"


class DataLossRefused(SafetyRefusal):
    """An undo would drop a column that holds values, or delete rows; refused unless allow_data_loss."""

    def __init__(self, losses: Iterable[DataLoss], run_id: str = "") -> None:
        self.losses, self.run_id = tuple(losses), run_id
        run = f" of {run_id}" if run_id else ""
        again = (f"`migrate-assets evolve --rollback {run_id} --allow-data-loss`" if run_id
                 else "--allow-data-loss")
        super().__init__(
            f"undo{run} refused by safety rule (it would lose data), nothing was undone:\n"
            + "\n".join(f"  - {loss}" for loss in self.losses)
            + f"\nto undo anyway and lose it, run {again} (Dagster rollback_evolution: allow_data_loss: true)"
        )

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": str(self), "run_id": self.run_id,
                "losses": [{"layer": x.layer, "table": x.table, "column": x.column, "count": x.count,
                            "how": x.how} for x in self.losses]}


class PipelineTableChangeRefused(SafetyRefusal):
    """A versioned migration would change a table a pipeline captures (tried in a rolled-back transaction
    first): plain DDL would bypass the registry, the lakehouse and the connector. Nothing of the run changed
    (`committed`: migrations of this run committed before the one refused, when a trial had to stop early)."""

    def __init__(self, changes: Iterable[tuple[str, str, str]], committed: int = 0) -> None:
        #: (file, table, what changed)
        self.changes, self.committed = tuple(changes), committed
        files = sorted({f for f, _, _ in self.changes})
        done = (f"; {committed} earlier migration(s) of this run committed before the check"
                if committed else "; nothing was changed")
        super().__init__(
            f"refused: {', '.join(files)} would change pipeline table(s) outside the pipeline{done}:\n"
            + "\n".join(f"  - {f} changes {t}: {what}" for f, t, what in self.changes)
            + "\nchange a pipeline table with `migrate-assets evolve CHANGE_FILE` or a spec edit and `apply` "
            "(registry, Iceberg and connector follow), or pass --allow-pipeline-drift to run it anyway and "
            "see the drift it leaves"
        )

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": str(self), "committed": self.committed,
                "changes": [{"file": f, "table": t, "change": w} for f, t, w in self.changes]}
