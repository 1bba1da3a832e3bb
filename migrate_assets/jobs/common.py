"""What every op shares: the retry policy, the error translation, Markdown tables.

The split between retrying and failing for good comes from the engine's typed errors: `exc.transient` (connection
refused, HTTP 5xx/409, lock timeout, Iceberg commit conflict) propagates so the op's `RetryPolicy` retries it;
anything else becomes `Failure(allow_retries=False)`, because retrying an incompatible schema or a checksum
mismatch only repeats the refusal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import Backoff, Failure, Jitter, MetadataValue, RetryPolicy

from migrate_assets.errors import InvalidInputError, MigrateAssetsError
from migrate_assets.markdown import table

#: every op: exponential backoff with jitter, for transient errors only (semantic ones raise Failure)
OP_RETRY = RetryPolicy(max_retries=3, delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
#: Dagster concurrency pool of every op that changes a database schema: give it a limit of 1
#: (`dagster instance concurrency set migrate_assets_ddl 1`) to serialise schema changes across runs, beside the
#: database's own advisory locks
DDL_POOL = "migrate_assets_ddl"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return table(headers, rows, newline="<br>")


def failure(exc: MigrateAssetsError, what: str, **metadata: Any) -> Failure:
    meta: dict[str, Any] = {"error_type": type(exc).__name__, "exit_code": exc.exit_code, **metadata}
    if isinstance(exc, InvalidInputError) and exc.problems:
        meta["problems"] = MetadataValue.md(md_table(
            ["file", "line", "key", "problem"], [[p.file, p.line, p.key, p.message] for p in exc.problems]))
    return Failure(description=f"{what}: {exc}", metadata=meta, allow_retries=False)


@contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Transient engine errors propagate (RetryPolicy retries them); semantic ones become a final Failure."""
    try:
        yield
    except MigrateAssetsError as exc:
        if exc.transient:
            raise
        raise failure(exc, what) from exc
