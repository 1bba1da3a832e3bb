"""Files on disk versus rows in the state table (pure), and the plans `up` and `down` derive from it.

Everything here is decided before a single statement runs, so a refusal (checksum mismatch, out-of-order
versions, a missing down script) always leaves the database untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.errors import (
    AlreadyAppliedError,
    ChecksumMismatchError,
    IrreversibleChangeError,
    OutOfOrderError,
    UsageError,
)
from migrate_assets.versioned.files import Migration
from migrate_assets.versioned.state import AppliedRow


@dataclass(frozen=True)
class Mismatch:
    version: int
    description: str
    applied_checksum: str
    file_checksum: str
    file: str


@dataclass(frozen=True)
class Status:
    migrations: tuple[Migration, ...]
    applied: tuple[AppliedRow, ...]  # in order of application
    pending: tuple[Migration, ...]  # ascending by version
    missing: tuple[AppliedRow, ...]  # applied, but no up file on disk (baseline markers excluded)
    mismatched: tuple[Mismatch, ...]
    out_of_order: tuple[Migration, ...]  # pending, yet lower than the highest applied version

    @property
    def current(self) -> int | None:
        return max((r.version for r in self.applied), default=None)


def compute_status(migrations: tuple[Migration, ...], rows: list[AppliedRow]) -> Status:
    by_version = {m.version: m for m in migrations}
    applied_versions = {r.version for r in rows}
    highest = max(applied_versions, default=None)
    pending = tuple(m for m in migrations if m.version not in applied_versions)
    missing = tuple(r for r in rows if r.version not in by_version and r.kind != "baseline")
    mismatched = tuple(
        Mismatch(r.version, r.description, r.checksum, m.checksum, m.name)
        for r in rows
        if (m := by_version.get(r.version)) is not None and r.checksum != m.checksum
    )
    out_of_order = tuple(m for m in pending if highest is not None and m.version < highest)
    return Status(migrations, tuple(rows), pending, missing, mismatched, out_of_order)


def _refuse_mismatch(status: Status) -> None:
    if status.mismatched:
        raise ChecksumMismatchError(
            f"{m.file} (applied {m.applied_checksum[:12]}, on disk {m.file_checksum[:12]})"
            for m in status.mismatched
        )


def plan_up(status: Status, to: int | None = None, allow_out_of_order: bool = False) -> tuple[Migration, ...]:
    """Pending migrations to apply, in version order; refuses on checksum drift or unapproved out-of-order."""
    _refuse_mismatch(status)
    todo = tuple(m for m in status.pending if to is None or m.version <= to)
    late = [m for m in status.out_of_order if m in todo]
    if late and not allow_out_of_order:
        raise OutOfOrderError(
            f"pending migrations are older than the highest applied version {status.current}: "
            + ", ".join(m.name for m in late)
            + "; rerun with --allow-out-of-order to apply them"
        )
    return todo


def plan_run(status: Status, version: int) -> Migration:
    """The one migration `run V` applies; already applied → AlreadyAppliedError (a false 'migrated' is worse)."""
    _refuse_mismatch(status)
    applied = {r.version: r for r in status.applied}
    if version in applied:
        row = applied[version]
        raise AlreadyAppliedError(
            f"migration {version} ({row.description}) is already applied (at {row.applied_at:%Y-%m-%d %H:%M:%S%z}); "
            "nothing was run"
        )
    for m in status.pending:
        if m.version == version:
            return m
    raise UsageError(f"no migration with version {version} on disk", file="<command line>", key="run VERSION")


def plan_down(status: Status, steps: int | None = None, to: int | None = None) -> tuple[AppliedRow, ...]:
    """Applied rows to revert, most recently applied first; refuses unless every one has a down script."""
    if (steps is None) == (to is None):
        raise UsageError("give exactly one of --steps or --to", file="<command line>")
    newest_first = tuple(reversed(status.applied))
    if steps is not None:
        if steps < 1:
            raise UsageError("--steps must be a positive integer", file="<command line>", key="--steps")
        targets = newest_first[:steps]
    else:
        assert to is not None
        targets = tuple(r for r in newest_first if r.version > to)
    by_version = {m.version: m for m in status.migrations}
    problems = []
    for r in targets:
        m = by_version.get(r.version)
        if r.kind == "baseline":
            problems.append(f"{r.version} ({r.description}) was baselined, not run; it has nothing to revert")
        elif m is None:
            problems.append(f"{r.version} ({r.description}) is applied but its files are not on disk")
        elif m.down_sql is None:
            expected = m.name[: -len(".up.sql")] + ".down.sql"
            problems.append(f"{m.name} has no down script (expected {expected})")
    if problems:
        raise IrreversibleChangeError(
            "cannot revert; nothing was changed:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return targets


def plan_baseline(status: Status, version: int) -> tuple[Migration, ...]:
    """Migrations ≤ `version` to mark applied without running; only on a database with no history."""
    if status.applied:
        raise AlreadyAppliedError(
            f"baseline refused: {len(status.applied)} migration(s) already recorded (current version "
            f"{status.current}); baseline is for a database that has no migration history yet"
        )
    return tuple(m for m in status.migrations if m.version <= version)
