"""The documented JSON shape of `migrations status` (SPEC §8), kept apart so the contract is easy to find."""

from __future__ import annotations

from migrate_assets.versioned.files import Migration
from migrate_assets.versioned.state import AppliedRow
from migrate_assets.versioned.status import Status


def applied_row_dict(r: AppliedRow) -> dict[str, object]:
    return {
        "version": r.version,
        "description": r.description,
        "checksum": r.checksum,
        "applied_at": r.applied_at.isoformat(),
        "execution_ms": r.execution_ms,
        "applied_by": r.applied_by,
        "kind": r.kind,
    }


def migration_dict(m: Migration) -> dict[str, object]:
    return {
        "version": m.version,
        "description": m.description,
        "checksum": m.checksum,
        "file": m.name,
        "has_down": m.down_sql is not None,
        "no_transaction": m.no_transaction,
    }


def status_dict(s: Status) -> dict[str, object]:
    """The documented JSON shape of `migrations status` (SPEC §8), plus `out_of_order`."""
    return {
        "current": s.current,
        "applied": [applied_row_dict(r) for r in s.applied],
        "pending": [migration_dict(m) for m in s.pending],
        "missing": [applied_row_dict(r) for r in s.missing],
        "mismatched": [
            {
                "version": m.version,
                "description": m.description,
                "checksum": m.applied_checksum,
                "file_checksum": m.file_checksum,
                "file": m.file,
            }
            for m in s.mismatched
        ],
        "out_of_order": [migration_dict(m) for m in s.out_of_order],
    }
